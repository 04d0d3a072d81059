// weft::blocking(): the caller's side (submit, park, interrupt). See
// include/weft/blocking.hpp and docs/internals.md ("The blocking pool").
#include <weft/blocking.hpp>
#include <weft/detail/fiber_core.hpp>
#include <weft/interrupted.hpp>
#include <weft/this_fiber.hpp>

#include "io/blocking_pool.hpp"
#include "scheduler/scheduler.hpp"

#include <mutex>

namespace weft::detail {

namespace {

constexpr const char* kWhat = "weft::blocking";
// The job's SyncQueue dies only after its caller's last wait returned.
constexpr const char* kNeverDestroyed =
    "weft::blocking: internal error, job destroyed while awaited";

// wait_done() parks until the pool thread marks `job` done. Throws
// Interrupted (interruptible only) when an interrupt ends the wait first.
void wait_done(BlockingJob& job, bool interruptible, weft::source_location where) {
  std::unique_lock lk(job.waiters.lock());
  if (job.state.load(std::memory_order_relaxed) == BlockingJobState::done) return;
  WaitSlot slot;
  (void)job.waiters.park_until(lk, slot, {kWhat, &job, where}, kNeverDestroyed, Deadline::max(),
                               interruptible);
}

}  // namespace

void run_blocking(BlockingTask& task, weft::source_location where) {
  FiberCore* self = current_fiber();
  if (self == nullptr) {
    task.run(std::stop_token());  // a plain thread: blocking it is the contract
    return;
  }
  self->note_site(where);
  self->throw_if_interrupted();  // a yield point: a pending interrupt means f never runs
  // A masked caller (or one in a finalizer) is never interrupted here, so
  // its f gets a token that never fires (and no stop state is allocated).
  BlockingJob job(task, task.takes_token() && this_fiber::interruptible());
  BlockingPool& pool = scheduler_of(*self).blocking_pool();
  pool.submit(job);
  try {
    wait_done(job, /*interruptible=*/true, where);
  } catch (const Interrupted&) {
    // The interrupter won the wait word. A job still queued never runs;
    // else f runs (or has just returned): stop it and wait for it, masked
    // (back-pressure, DESIGN §1), then let Interrupted go on. Whatever f
    // produced is discarded with the task.
    if (!pool.cancel(job)) {
      job.stop.request_stop();
      wait_done(job, /*interruptible=*/false, where);
    }
    throw;
  }
}

}  // namespace weft::detail
