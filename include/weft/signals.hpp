// Process signals: the contract of Runtime::block_on_main(f, signals)
// (DESIGN.md §1 "Process integration"; implemented in src/runtime/signals.cpp).
//
// Guarantees of block_on_main:
// - f runs as the root fiber named "main"; the calling thread (the process's
//   main thread, not a fiber) blocks until it ended, finalizers included.
// - While it runs, each listed signal (default SIGINT and SIGTERM) is caught
//   by an async-signal-safe handler that only writes the signal number to a
//   self-pipe; the calling thread waits on that pipe and interrupts the main
//   fiber (like interrupt_fork: the fiber unwinds, its finalizers run). A
//   small root fiber ("main/end-watcher") tells it when the main fiber ended.
// - The interrupt is delivered like any other: at the main fiber's next
//   interruptible yield point. A blocking system call is not one: a fiber
//   in read(), accept(), a plain std::mutex or a long computation keeps its
//   worker thread and sees the interrupt only after the call returns (at the
//   next yield point after it; this_fiber::check_interrupt() is one). The
//   call is not made to fail with EINTR: the handlers are installed with
//   SA_RESTART, and Linux hands a kill()ed signal to the process's main
//   thread (normally the one in block_on_main), not to the worker. Until
//   the call returns, the signal seems to do nothing (and the main fiber's
//   end also awaits its children, so a child blocked that way holds it
//   too). Code that must stay responsive waits in poll() with a short
//   timeout and calls check_interrupt() between the waits.
// - Any listed signal after the first, while the main fiber has not ended,
//   is ignored and reported on stderr with what the main fiber is doing:
//   "weft: signal 2 received again while the main fiber runs its finalizers
//   (the interrupt was delivered); ignoring it", or "... received again
//   before the main fiber reached an interruptible yield point (it is
//   running: a blocking system call ...); ignoring it". It does not disturb
//   the clean-up.
// - The previous handlers are restored before block_on_main returns; a
//   signal that arrives after the main fiber ended is ignored.
// - The result is the process exit status: 128 + N when signal N interrupted
//   the main fiber (130 for SIGINT, 143 for SIGTERM); otherwise f's value if
//   f returns int, 0 for any other success, 1 when f failed or was
//   interrupted by something else (the cause is printed on stderr).
//   Write `return runtime.block_on_main(...)` in main().
// - One block_on_main at a time per process (std::logic_error otherwise),
//   and never from a fiber (std::logic_error). A signal that cannot be
//   caught (SIGKILL, SIGSTOP, out of range) gives std::invalid_argument.
#pragma once

#include <weft/runtime.hpp>

#include <csignal>

namespace weft {

// kSignalExitBase: a main fiber stopped by signal N exits with 128 + N.
inline constexpr int kSignalExitBase = 128;

}  // namespace weft
