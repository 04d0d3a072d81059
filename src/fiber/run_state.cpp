// A fiber's run state: the one place that writes FiberControl::run_state_.
// Every transition, who makes it and the atomic that orders it are in
// docs/internals.md ("Fiber states"); the worker and the wait module call
// these and never touch the state themselves.
#include "fiber/fiber_control.hpp"

#include "fiber/run_state.hpp"
#include "scheduler/scheduler.hpp"

#include <time.h>

namespace weft::detail {

// The worker-side transitions (begin_run, on_switched_out, retire) are
// inline in run_state.hpp: they run twice per switch.

// --- owner side ----------------------------------------------------------------

void FiberControl::suspend(SwitchAction action) noexcept {
  switch_action_ = action;
  Worker* const w = worker_;
  // Direct switch (docs/internals.md): straight into the worker's next fiber,
  // which finishes our switch-out on its own stack once ours is saved.
  if (FiberControl* next = w->pick_direct(this)) {
    context_switch(context_.ctx, next->context_.ctx);
  } else {
    context_switch(context_.ctx, w->sched_context());
  }
  // Resumed, maybe on another worker (begin_run stored it in worker_): by
  // the worker loop, or by a fiber's direct switch, whose bookkeeping is ours.
  worker_->complete_switch_in(this);
}

void FiberControl::prepare_park() noexcept {
  run_state_.store(RunState::parking, std::memory_order_relaxed);
}

void FiberControl::cancel_park() noexcept {
  run_state_.store(RunState::running, std::memory_order_relaxed);
}

std::int64_t coarse_now_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
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
                        const WaitSite& site, std::uint64_t epoch) noexcept {
  // What dumps show while parked (relaxed stores: a diagnostic). The call
  // site is already in FiberCore::site_: every blocking call records it at
  // its entry (enter_yield_point, note_site), before it can park.
  wait_object_.store(site.object, std::memory_order_relaxed);
  parked_at_.store(coarse_now_ns(), std::memory_order_relaxed);
  wait_what_.store(site.what, std::memory_order_relaxed);
  if (Tracer* t = scheduler_->tracer()) [[unlikely]]
    t->park(worker_, *this, site.what, site.where.line() != 0 ? site.where.file_name() : nullptr,
            site.where.line());
  if (!deadline) {  // the common case: no timer to build (kernel_yield_pingpong)
    suspend(SwitchAction::park);
    wait_what_.store(nullptr, std::memory_order_relaxed);
    return;
  }
  WaitTimer timer{TimerEntry{}, this, epoch};
  timer.entry.deadline = *deadline;
  timer.entry.fire = &fire_wait_timer;
  timer.entry.user = &timer;
  TimerHeap& heap = worker_->timers();
  heap.insert(&timer.entry);
  suspend(SwitchAction::park);
  wait_what_.store(nullptr, std::memory_order_relaxed);
  // The heap of the worker that armed it (the fiber may have migrated);
  // cancel() waits for a fire in progress.
  heap.cancel(&timer.entry);
}

void FiberControl::note_acquired(const void* mutex) noexcept {
  FiberExtras* x = extras_nothrow();  // the first Mutex a fiber takes makes the extras
  if (x == nullptr) return;           // a diagnostic: untracked without memory
  for (auto& slot : x->held) {
    if (slot.load(std::memory_order_relaxed) == nullptr) {
      slot.store(mutex, std::memory_order_relaxed);
      return;
    }
  }
}

void FiberControl::note_released(const void* mutex) noexcept {
  FiberExtras* x = extras_if_any();
  if (x == nullptr) return;
  for (auto& slot : x->held) {
    if (slot.load(std::memory_order_relaxed) == mutex) {
      slot.store(nullptr, std::memory_order_relaxed);
      return;
    }
  }
}

void note_mutex_held(const void* mutex, bool held) noexcept {
  if (FiberCore* f = current_fiber()) {
    if (held) {
      control(*f).note_acquired(mutex);
    } else {
      control(*f).note_released(mutex);
    }
  }
}

// --- waker side ----------------------------------------------------------------

void FiberControl::unpark() noexcept {
  if (Tracer* t = scheduler_->tracer()) [[unlikely]]
    t->wake(scheduler_->current_worker(), *this);
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
