// timeout: the non-template part (the deadline wait and its clean-up).
#include <weft/timeout.hpp>

#include <weft/detail/fiber_group.hpp>

#include "scheduler/scheduler.hpp"

namespace weft {

const char* TimedOut::what() const noexcept {
  return "weft::TimedOut: the deadline passed before the task ended";
}

namespace detail {

namespace {

// stop_task() interrupts the task (attributed to the caller) and awaits it,
// finalizers included, without being interruptible itself (DESIGN 3.10).
void stop_task(FiberCore& task, FiberId me) noexcept {
  FiberGroup group;
  group.add(task);
  group.stop(me);
}

// wait_for() is true if the task ended within d.
bool wait_for(FiberCore& task, std::chrono::nanoseconds d, weft::source_location where) {
  using Clock = std::chrono::steady_clock;
  if (d <= std::chrono::nanoseconds::zero()) return task.done();  // already expired
  const Clock::time_point now = clock_now();
  // A duration past the end of the clock is no deadline at all.
  if (d >= Clock::time_point::max() - now) {
    task.await_done(where, "timeout");
    return true;
  }
  return task.await_done_until(now + std::chrono::duration_cast<Clock::duration>(d), where,
                               "timeout");
}

}  // namespace

TimeoutWait await_with_deadline(FiberCore& task, std::chrono::nanoseconds d,
                                weft::source_location where) {
  const FiberId me = current_id();
  bool finished = false;
  try {
    finished = wait_for(task, d, where);
  } catch (...) {
    // The caller was interrupted ("interrupted by my parent", not a timeout).
    stop_task(task, me);
    throw;
  }
  if (finished) return TimeoutWait::finished;
  stop_task(task, me);
  return TimeoutWait::timed_out;
}

}  // namespace detail
}  // namespace weft
