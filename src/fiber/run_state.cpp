// A fiber's run state: the one place that writes FiberControl::run_state_.
// Every transition, who makes it and the atomic that orders it are in
// docs/internals.md ("Fiber states"); the worker and the wait module call
// these and never touch the state themselves.
#include "fiber/fiber_control.hpp"

#include "fiber/run_state.hpp"
#include "scheduler/scheduler.hpp"

namespace weft::detail {

// The worker-side transitions (begin_run, on_switched_out, retire) are
// inline in run_state.hpp: they run twice per switch.

// --- owner side ----------------------------------------------------------------

void FiberControl::suspend(SwitchAction action) noexcept {
  switch_action_ = action;
  context_switch(context_.ctx, worker_->sched_context());
}

void FiberControl::prepare_park() noexcept {
  run_state_.store(RunState::parking, std::memory_order_relaxed);
}

void FiberControl::cancel_park() noexcept {
  run_state_.store(RunState::running, std::memory_order_relaxed);
}

namespace {

// WaitTimer is a fiber's deadline: when it fires, it claims the wait as
// timed_out and unparks the fiber.
struct WaitTimer {
  TimerEntry entry;
  FiberControl* fiber;
  std::uint64_t epoch;
};

void fire_wait_timer(TimerEntry* e) {
  auto* t = static_cast<WaitTimer*>(e->user);
  if (t->fiber->try_claim(t->epoch, WaitStatus::timed_out)) t->fiber->unpark();
}

}  // namespace

void FiberControl::park(std::optional<std::chrono::steady_clock::time_point> deadline,
                        const char* what, std::uint64_t epoch) noexcept {
  if (!deadline) {  // the common case: no timer to build (kernel_yield_pingpong)
    set_blocked_on(what);
    suspend(SwitchAction::park);
    set_blocked_on(nullptr);
    return;
  }
  WaitTimer timer{TimerEntry{}, this, epoch};
  timer.entry.deadline = *deadline;
  timer.entry.fire = &fire_wait_timer;
  timer.entry.user = &timer;
  TimerHeap& heap = worker_->timers();
  heap.insert(&timer.entry);
  set_blocked_on(what);
  suspend(SwitchAction::park);
  set_blocked_on(nullptr);
  // The heap of the worker that armed it (the fiber may have migrated);
  // cancel() waits for a fire in progress.
  heap.cancel(&timer.entry);
}

// --- waker side ----------------------------------------------------------------

void FiberControl::unpark() noexcept {
  RunState s = run_state_.load(std::memory_order_acquire);
  for (;;) {
    if (s == RunState::parking) {
      // The owner is still switching out: its worker requeues it.
      if (run_state_.compare_exchange_weak(s, RunState::notified, std::memory_order_acq_rel))
        return;
    } else {
      WEFT_ASSERT(s == RunState::parked, "unpark of fiber {} in state {}", id(),
                  static_cast<int>(s));
      if (run_state_.compare_exchange_weak(s, RunState::runnable, std::memory_order_acq_rel)) {
        scheduler_->schedule(this);
        return;
      }
    }
  }
}

}  // namespace weft::detail
