// walk_to_catch(): would the C++ unwinder's search phase stop anywhere but
// at the runtime's own catch (the fiber's body, or its open stack scope)?
// Answered from a per-thread cache of FrameRules keyed by
// return address (frame_rule.hpp), so a stack shape seen before is walked
// without libgcc: a few loads per frame.
#pragma once

#include <cstdint>

namespace weft::detail::unwind {

enum class Walk {
  clear,    // every frame up to the body has cleanups at most: phase 2 alone is exact
  handler,  // a frame could catch (a catch clause, a specification, terminate)
  unknown,  // a frame we cannot read, or the walk left the stack: throw
};

// Target: where the unwind must end. `body`: the fiber's own interrupt,
// caught by run_body(); `scope`: the open stack scope's fire
// (include/weft/detail/timeout_scope.hpp), caught by the timeout's or the
// race's frame on the same stack.
enum class Target { body, scope };

// walk_to_catch() starts at the caller of the function whose frame pointer
// is `fp` (built with one: fp[0] is the caller's rbp, fp[1] the return
// address) and walks up to the frame that must catch. Every frame below it
// must have no handler at its call site (cleanups are fine), and the
// catching frame's call site exactly the runtime's own handler chain:
//  - for `body`, the frame whose caller is the function starting at
//    `body_caller`, with run_body()'s chain (FrameRule::body_chain): code
//    inlined into it with a try of its own (a lambda's catch, a timeout's
//    scope, acquire_release) changes the chain, and phase 1 would stop
//    there first;
//  - for `scope`, the first frame with any handler, with the stack scope's
//    chain (FrameRule::scope_chain): the innermost try around that call is
//    then the scope's (only one scope is open on a fiber's stack).
// Every address read lies in [lo, hi), the stack. When `chain` is given, the
// walked frames' return addresses and stack pointers are recorded in it
// (check_against_libgcc() compares them).
struct Chain {
  static constexpr int kMax = 64;
  std::uintptr_t ip[kMax];  // the frame's return address into it
  std::uintptr_t sp[kMax];  // its stack pointer at that call
  int frames = 0;
};
Walk walk_to_catch(const void* fp, Target target, std::uintptr_t body_caller, std::uintptr_t lo,
                   std::uintptr_t hi, Chain* chain = nullptr) noexcept;

// check_against_libgcc() walks the calling stack with libgcc's
// _Unwind_Backtrace and says whether it meets every frame of `chain`, in
// order, with the same stack pointer: the proof that a walk read the frames as the
// unwinder will. Debug builds run it after every clear walk.
bool check_against_libgcc(const Chain& chain) noexcept;

// decoded_rules() is how many return addresses this thread has decoded (tests).
std::uint64_t decoded_rules() noexcept;

}  // namespace weft::detail::unwind
