// Fiber stack overflow reporting (folly/fibers' scheme).
//
// A process-wide SIGSEGV/SIGBUS handler (installed once, the only static state
// of the context module) runs on a per-thread alternate signal stack. It claims
// a fault only when the faulting address (or the stack pointer) lies in the
// page just below the base of the fiber the faulting thread is running (its
// guard page) -- or in the kOverflowSlack bytes below that, where a large frame
// lands when it jumps over the guard -- prints
//   weft: fiber stack overflow in fiber #<id> '<name>' (stack <size> bytes);
//   raise ForkOptions::stack_size or RuntimeOptions::stack_size
// and aborts. Any other fault is passed on untouched to the handler that was
// installed before ours (a SIG_DFL/SIG_IGN one is restored and the fault
// re-executes, so the process dies of the signal as it would have).
//
// The handler decides from a thread-local pointer the scheduler maintains with
// set_running_fiber(). Canary stacks (no guard page) are checked by the
// scheduler instead, which calls report_canary_overflow().
//
// Sanitizers: ASan and TSan install SIGSEGV handlers at start-up; ours is
// installed later, so it sees the fault first (ASan's default
// allow_user_segv_handler=1 permits it; no ASAN_OPTIONS needed). An overflow
// is still reported by us; any other fault reaches the sanitizer, which
// prints its own SEGV report and exits non-zero instead of dying of SIGSEGV.
#pragma once

#include <cstddef>
#include <cstdint>

namespace weft::detail {

struct Stack;

// RunningFiberInfo: what the overflow report names; owned by the scheduler,
// must stay valid while set as the running fiber.
struct RunningFiberInfo {
  const Stack* stack;
  std::uint64_t fiber_id;
  const char* name;  // may be nullptr
};

// kOverflowSlack: faults this far below a guard page still count as overflow.
inline constexpr std::size_t kOverflowSlack = 64 * 1024;

// set_running_fiber() records the fiber this thread runs (nullptr: none).
// Call on every switch-in (info) and switch-out (nullptr). An out-of-line,
// noinline thread_local store: safe to call right after a migration.
void set_running_fiber(const RunningFiberInfo* info) noexcept;

// running_fiber() returns what set_running_fiber() last stored on this
// thread. Do not keep the result across a context switch.
const RunningFiberInfo* running_fiber() noexcept;

// install_overflow_handler() installs the process-wide SIGSEGV/SIGBUS handler
// once (later calls do nothing), remembering the previous actions. A handler
// installed after ours replaces it (and may chain to it; ours stays correct).
void install_overflow_handler();

// install_overflow_handler_for_thread() installs the handler if needed and
// gives the calling thread an alternate signal stack (max(4 * SIGSTKSZ,
// 64 KiB), freed at thread exit) unless it already has one of at least
// 16 KiB. Each worker thread calls it at start; without it an overflow on that
// thread kills the process with a plain SIGSEGV.
void install_overflow_handler_for_thread();

// report_canary_overflow() prints the overflow message with "(detected by
// canary)" and aborts; async-signal-safe.
[[noreturn]] void report_canary_overflow(std::uint64_t fiber_id, const char* name,
                                         std::size_t size);

}  // namespace weft::detail
