// The worker-side half of a fiber's run state (the rest is in
// run_state.cpp; together they are the only writers of FiberControl::run_state_). Inline:
// the worker calls begin_run() and on_switched_out() at every switch.
#pragma once

#include "fiber/fiber_control.hpp"

#include <utility>

namespace weft::detail {

// --- worker side -------------------------------------------------------------

inline RunStart FiberControl::begin_run(Worker* w, std::atomic<bool>* preempt) noexcept {
  worker_ = w;
  core().preempt_ = preempt;
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

inline RunStart FiberControl::begin_run_direct(Worker* w, std::atomic<bool>* preempt) noexcept {
  if (!started_ && interrupt_pending() && !forked_uninterruptible_) {
    // Its end runs user code (the callable's destructors): not on the
    // outgoing fiber's stack. The worker loop's begin_run() ends it.
    return RunStart::ended_unstarted;
  }
  worker_ = w;
  core().preempt_ = preempt;
  run_state_.store(RunState::running, std::memory_order_relaxed);
  return started_ ? RunStart::resumed : RunStart::first_run;
}

inline AfterSwitch FiberControl::on_switched_out() noexcept {
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
      WEFT_ASSERT(expected == RunState::notified, "fiber {} in state {}", id(),
                  static_cast<int>(expected));
      run_state_.store(RunState::runnable, std::memory_order_relaxed);
      return AfterSwitch::requeue;
    }
    case SwitchAction::exit:
      return AfterSwitch::exited;
    case SwitchAction::none:
      break;
  }
  WEFT_ASSERT(false, "fiber {} switched out without an action", id());
  return AfterSwitch::parked;
}

inline void FiberControl::retire() noexcept {
  // release: a dump that reads `done` sees the end complete.
  run_state_.store(RunState::done, std::memory_order_release);
}

}  // namespace weft::detail
