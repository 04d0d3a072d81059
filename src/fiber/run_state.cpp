// A fiber's run state: the one place that writes FiberCore::run_state_.
// Every transition, who makes it and the atomic that orders it are in
// docs/internals.md ("Fiber states"); the worker and the wait module call
// these and never touch the state themselves.
#include <weft/detail/fiber_core.hpp>

#include "fiber/fiber_context.hpp"
#include "scheduler/scheduler.hpp"

namespace weft::detail {

// --- worker side -------------------------------------------------------------

RunStart FiberCore::begin_run(Worker* w, std::atomic<bool>* preempt) noexcept {
  worker_ = w;
  preempt_ = preempt;
  if (!started_) {
    if (interrupt_pending() && !forked_uninterruptible_) {
      // DESIGN 3.2: interrupted before its body started: it never runs.
      complete_unstarted();
      return RunStart::ended_unstarted;
    }
    run_state_.store(RunState::running, std::memory_order_relaxed);
    return RunStart::first_run;
  }
  run_state_.store(RunState::running, std::memory_order_relaxed);
  return RunStart::resumed;
}

AfterSwitch FiberCore::on_switched_out() noexcept {
  switch (std::exchange(switch_action_, SwitchAction::none)) {
    case SwitchAction::yield:
      run_state_.store(RunState::runnable, std::memory_order_relaxed);
      return AfterSwitch::yielded;
    case SwitchAction::park: {
      RunState expected = RunState::parking;
      // acq_rel: pairs with the claimer's CAS in unpark(): whoever comes
      // second sees the other's transition.
      if (run_state_.compare_exchange_strong(expected, RunState::parked, std::memory_order_acq_rel))
        return AfterSwitch::parked;
      WEFT_ASSERT(expected == RunState::notified, "fiber {} in state {}", id_,
                  static_cast<int>(expected));
      run_state_.store(RunState::runnable, std::memory_order_relaxed);
      return AfterSwitch::requeue;
    }
    case SwitchAction::exit:
      return AfterSwitch::exited;
    case SwitchAction::none:
      break;
  }
  WEFT_ASSERT(false, "fiber {} switched out without an action", id_);
  return AfterSwitch::parked;
}

void FiberCore::retire() noexcept {
  // release: a dump that reads `done` sees the end complete.
  run_state_.store(RunState::done, std::memory_order_release);
}

// --- owner side ----------------------------------------------------------------

void FiberCore::suspend(SwitchAction action) noexcept {
  switch_action_ = action;
  context_switch(fiber_context(*this).ctx, worker_->sched_context());
}

void FiberCore::prepare_park() noexcept {
  run_state_.store(RunState::parking, std::memory_order_relaxed);
}

void FiberCore::cancel_park() noexcept {
  run_state_.store(RunState::running, std::memory_order_relaxed);
}

namespace {

// WaitTimer is a fiber's deadline: when it fires, it claims the wait as
// timed_out and unparks the fiber.
struct WaitTimer {
  TimerEntry entry;
  FiberCore* fiber;
  std::uint64_t epoch;
};

void fire_wait_timer(TimerEntry* e) {
  auto* t = static_cast<WaitTimer*>(e->user);
  if (t->fiber->try_claim(t->epoch, WaitStatus::timed_out)) t->fiber->unpark();
}

}  // namespace

void FiberCore::park(std::optional<std::chrono::steady_clock::time_point> deadline,
                     const char* what, std::uint64_t epoch) noexcept {
  WaitTimer timer{TimerEntry{}, this, epoch};
  TimerHeap* heap = nullptr;
  if (deadline) {
    timer.entry.deadline = *deadline;
    timer.entry.fire = &fire_wait_timer;
    timer.entry.user = &timer;
    heap = &worker_->timers();
    heap->insert(&timer.entry);
  }
  set_blocked_on(what);
  suspend(SwitchAction::park);
  set_blocked_on(nullptr);
  // The heap of the worker that armed it (the fiber may have migrated);
  // cancel() waits for a fire in progress.
  if (heap != nullptr) heap->cancel(&timer.entry);
}

// --- waker side ----------------------------------------------------------------

void FiberCore::unpark() noexcept {
  RunState s = run_state_.load(std::memory_order_acquire);
  for (;;) {
    if (s == RunState::parking) {
      // The owner is still switching out: its worker requeues it.
      if (run_state_.compare_exchange_weak(s, RunState::notified, std::memory_order_acq_rel))
        return;
    } else {
      WEFT_ASSERT(s == RunState::parked, "unpark of fiber {} in state {}", id_,
                  static_cast<int>(s));
      if (run_state_.compare_exchange_weak(s, RunState::runnable, std::memory_order_acq_rel)) {
        scheduler_->schedule(this);
        return;
      }
    }
  }
}

}  // namespace weft::detail
