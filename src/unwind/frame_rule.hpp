// FrameRule: what a walk of a parked fiber's stack needs to know about one
// return address, decoded once from the DWARF call frame information
// (.eh_frame) and the C++ exception table (.gcc_except_table) of the code
// that holds it.
//
// Why: delivering an interrupt by the unwinder's phase 2 alone
// (_Unwind_ForcedUnwind) is 3.3x cheaper than a throw (docs/performance.md,
// "Steps 2 and 3"), and is the same thing as a throw whenever phase 1 would
// find no handler between the wait and the fiber's body. That answer depends
// only on the chain of return addresses, so it is cached per address: a
// parked fiber's stack repeats a few shapes.
//
// What is decoded (x86-64 Linux, the System V psABI's DWARF numbering:
// rbp = 6, rsp = 7, return address = 16):
//  - the CFA rule at the call site: CFA = rsp or rbp + offset;
//  - where the return address is saved (CFA + offset);
//  - whether rbp is saved (CFA + offset) or unchanged;
//  - how many handlers (catch clauses, exception specifications) the call
//    site's LSDA action chain holds, or that it is missing from the
//    call-site table (std::terminate): phase 1 could stop there. A count,
//    not a yes/no, because the fiber body's frame holds the runtime's own
//    handlers and may hold inlined user code's too (handler_walk.hpp).
// Any other form (a CFA expression, rbp or the return address in another
// register, a signal frame, a personality other than the C++ one, an
// encoding we do not read) makes the rule `walkable = false`, and the caller
// falls back to the ordinary throw. The formats are those of the LSB
// ("Exception Frames", DWARF 4 section 6.4) and of the Itanium C++ ABI's
// exception handling tables, as GCC emits them.
#pragma once

#include <cstdint>

namespace weft::detail::unwind {

// Is the walker built for this target (x86-64 Linux, libstdc++: its
// personality's LSDA and exception globals)? Elsewhere decode() says
// "not walkable" for everything and interrupts are always thrown.
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && defined(__GLIBCXX__)
#define WEFT_UNWIND_WALK 1
inline constexpr bool kSupported = true;
#else
inline constexpr bool kSupported = false;
#endif

struct FrameRule {
  std::uintptr_t func = 0;  // start of the function holding the address
  std::int32_t cfa_offset = 0;
  std::int32_t ra_offset = 0;   // the return address is at CFA + ra_offset
  std::int32_t rbp_offset = 0;  // rbp saved at CFA + rbp_offset (when rbp_saved)
  bool walkable = false;        // the rule above is complete and in a form we read
  bool cfa_is_rbp = false;      // CFA = rbp + cfa_offset (else rsp + cfa_offset)
  bool rbp_saved = false;
  // What phase 1 finds at the call site: the number of handler records
  // (catch clauses and exception specifications) in its LSDA action chain,
  // cleanups not counted; kTerminate when the call site is missing from the
  // table (std::terminate) or the chain could not be read.
  std::uint8_t handlers = 0;
  static constexpr std::uint8_t kTerminate = 0xff;
  // The chain is exactly catch (const Interrupted&), catch (const
  // BodyMark&), catch (...): FiberTask::run_body()'s own handlers (BodyMark
  // is never thrown, and is named nowhere else), not an inlined try's.
  bool body_chain = false;
  // The chain is exactly catch (const ScopeInterrupted&), catch (const
  // ScopeMark&), catch (...): a stack scope's (run_in_scope(), which
  // run_timeout_here() and run_race_here() share), whatever frame it is
  // inlined into.
  bool scope_chain = false;
};

// decode() reads the rule of the frame whose return address (for the frame
// that called out of it) is `ra`. Never throws; any doubt gives walkable = false.
FrameRule decode(std::uintptr_t ra) noexcept;

}  // namespace weft::detail::unwind
