// TimeoutScope: a timeout whose task runs on the caller's own stack; see
// include/weft/detail/timeout_scope.hpp and docs/internals.md ("Timeouts on
// the caller's stack").
#include <weft/detail/fiber_group.hpp>
#include <weft/detail/timeout_scope.hpp>

#include "fiber/fiber_control.hpp"
#include "scheduler/scheduler.hpp"

#include <exception>
#include <new>

namespace weft::detail {

namespace {
TimerEntry& entry_of(unsigned char* storage) noexcept {
  return *std::launder(reinterpret_cast<TimerEntry*>(storage));
}
}  // namespace

bool StackScope::usable() noexcept {
  FiberCore* f = current_fiber();
  if (f == nullptr) return false;
  const FiberControl& c = control(*f);
  // interruptible_now(): not masked, no exception in flight or being
  // handled; then every yield point of the task that could deliver the
  // fire could deliver an interrupt of the caller too, and the one wait
  // word and its interruptible bit serve both.
  return !c.scope_open() && c.interruptible_now();
}

StackScope::StackScope(Disarm disarm) noexcept
    : fiber_(&control(*current_fiber())), disarm_(disarm) {}

void StackScope::open() noexcept {
  fiber_->begin_timeout_scope(saved_locals_, failures_at_entry_);
  open_ = true;
}

void StackScope::fire() noexcept { fiber_->fire_timeout_scope(); }

std::uint32_t StackScope::end() noexcept {
  open_ = false;
  // After the hook returns nothing sets kScoped any more.
  disarm_(*this);
  return fiber_->end_timeout_scope(saved_locals_);
}

StackScope::Outcome StackScope::finish(bool fire_ended_task) {
  const std::uint32_t flags = end();
  // "Interrupted by my parent" wins over "timed out" when the task gave no
  // value: the caller's own interrupt, pending since, is thrown here (its
  // finalizer failures stay recorded on the fiber, for its Exit).
  if (fire_ended_task && (flags & FiberCore::kPending) != 0 && fiber_->interruptible_now())
    fiber_->throw_interrupted();
  Outcome out;
  out.held_off = (flags & FiberCore::kScopeHeldOff) != 0;
  out.fired = (flags & FiberCore::kScoped) != 0;
  out.failures = fiber_->take_finalizer_failures(failures_at_entry_);
  return out;
}

bool StackScope::caller_interrupting() const noexcept { return fiber_->interrupting(); }

bool StackScope::end_own_unwind() noexcept { return fiber_->end_scope_unwind(); }

Cause StackScope::interrupted_cause() const { return fiber_->scope_cause(); }

Cause StackScope::failure(std::exception_ptr e, Cause finalizers) {
  Cause cause;
  try {
    std::rethrow_exception(e);
  } catch (const Interrupted& x) {
    cause = x.cause();  // e.g. a join of an interrupted fiber (DESIGN 3.7)
  } catch (...) {
    FiberCore* f = current_fiber();
    cause = Cause::fail(std::move(e), {}, f != nullptr ? site_of(control(*f)) : Cause::Site{});
  }
  if (finalizers.empty()) return cause;
  return Cause::sequential(std::move(cause), std::move(finalizers));
}

// --- TimeoutScope: fired by a timer ----------------------------------------------

TimeoutScope::TimeoutScope(std::chrono::nanoseconds d) : StackScope(&cancel_timer) {
  static_assert(sizeof(TimerEntry) <= kTimerStorage && alignof(TimerEntry) <= 8,
                "TimeoutScope::kTimerStorage is too small for a TimerEntry");
  TimerEntry& e = *new (timer_) TimerEntry{};
  if (d <= std::chrono::nanoseconds::zero()) {
    expired_ = true;  // nothing armed; the task never runs
  } else if (const Clock::time_point now = clock_now(); d < Clock::time_point::max() - now) {
    e.deadline = now + std::chrono::duration_cast<Clock::duration>(d);
    e.fire = [](TimerEntry* t) { static_cast<TimeoutScope*>(t->user)->fire(); };
    e.user = this;
    TimerHeap& heap = control(*current_fiber()).worker()->timers();
    heap.insert(&e);  // may throw std::bad_alloc: nothing is open yet
    heap_ = &heap;
  }
  open();
}

TimeoutScope::~TimeoutScope() {
  close_if_open();  // an exception that is not ours passes
  entry_of(timer_).~TimerEntry();
}

void TimeoutScope::cancel_timer(StackScope& self) noexcept {
  auto& t = static_cast<TimeoutScope&>(self);
  // The heap of the worker that armed it (the fiber may have migrated).
  // cancel() returns after a fire in progress: nothing sets kScoped after it.
  if (t.heap_ != nullptr) static_cast<TimerHeap*>(t.heap_)->cancel(&entry_of(t.timer_));
}

// --- RaceScope: fired by a sibling contestant's win --------------------------------

RaceScope::RaceScope(bool first_completion) noexcept
    : StackScope(&disarm), first_completion_(first_completion) {}

RaceScope::~RaceScope() { close_if_open(); }

bool RaceScope::open() noexcept {
  {
    std::lock_guard lk(lock_);
    if (state_ == State::decided) return false;  // contestant 0 never runs
    state_ = State::armed;
  }
  // Opened after the arming: a sibling may fire at once, before the fiber's
  // scope_open_ is set; there is no yield point in between, and the fire is
  // no more than the flags and the wait word, which the owner reads next.
  StackScope::open();
  return true;
}

void RaceScope::sibling_ended(std::size_t slot, bool succeeded) noexcept {
  if (!succeeded && !first_completion_) return;  // a failure decides nothing
  if (succeeded && !first_completion_) {
    // A body that returned still ends failed when a finalizer failed or an
    // interrupt is pending at its end (DESIGN 3.5): that is no win.
    const FiberControl& self = control(*current_fiber());
    if (self.finalizer_failures() != 0 || self.core().interrupt_pending()) return;
  }
  std::lock_guard lk(lock_);
  switch (state_) {
    case State::unopened:
      state_ = State::decided;
      decided_by_ = slot;
      break;
    case State::armed:
      state_ = State::decided;
      decided_by_ = slot;
      // Under lock_: the racer's disarm waits for it (the fiber and the
      // scope live until every forked contestant was awaited).
      fire();
      break;
    case State::decided:
    case State::closed:
      break;
  }
}

void RaceScope::disarm(StackScope& self) noexcept {
  auto& r = static_cast<RaceScope&>(self);
  std::lock_guard lk(r.lock_);
  if (r.state_ != State::decided) r.state_ = State::closed;
}

// --- FiberControl's side -------------------------------------------------------

void FiberControl::begin_timeout_scope(LocalMap& saved_locals, std::size_t& failures) noexcept {
  scope_open_ = true;
  scope_forked_ = false;
  scope_stop_made_ = false;
  if (const LocalMap* l = locals_if_any()) saved_locals = *l;  // shared, copied on change
  failures = finalizer_failures();
}

std::uint32_t FiberControl::end_timeout_scope(LocalMap& saved_locals) noexcept {
  if (scope_forked_) stop_scope_children();
  if (scope_stop_made_) {
    FiberExtras& x = *extras_if_any();  // made by stop_token()
    std::lock_guard lk(x.interrupt_lock);
    x.scope_stop = std::stop_source(std::nostopstate);
  }
  // The task's FiberLocal changes end with it, as a forked task's would
  // (a task that set one made the extras).
  if (FiberExtras* x = extras_if_any()) x->locals = std::move(saved_locals);
  scope_open_ = false;
  // acq_rel: the timer's seq_cst kScoped (cancelled now) is seen.
  return core().interrupt_flags_.fetch_and(
      ~(FiberCore::kScoped | FiberCore::kScopeHeldOff | FiberCore::kScopeDelivered),
      std::memory_order_acq_rel);
}

void FiberControl::fire_timeout_scope() noexcept {
  scheduler_->count(Counter::interrupts_requested);
  if (Tracer* t = scheduler_->tracer()) [[unlikely]]
    t->interrupt_requested(scheduler_->current_worker(), *this, id());
  std::stop_source stop(std::nostopstate);
  if (FiberExtras* x = extras_if_any()) {  // a stop token was taken: it is there
    std::lock_guard lk(x->interrupt_lock);
    stop = x->scope_stop;
  }
  // seq_cst, then the claim: the interrupter's half of the Dekker pair with
  // the owner's begin_wait() + interrupt_pending_after_begin().
  core().interrupt_flags_.fetch_or(FiberCore::kScoped, std::memory_order_seq_cst);
  if (try_claim_interrupted()) unpark();
  if (stop.stop_possible()) stop.request_stop();
}

void FiberControl::stop_scope_children() noexcept {
  std::vector<FiberRef> live;
  children_snapshot(live, /*live_only=*/true);
  FiberGroup group;
  for (FiberRef& c : live)
    if (control(*c.get()).forked_in_scope_) group.add(std::move(c));
  if (!group.empty()) group.stop(id());
}

Cause FiberControl::take_scope_cause() {
  mark_delivered(FiberCore::kScopeDelivered);
  return scope_cause();
}

Cause FiberControl::scope_cause() const { return Cause::interrupt(id(), site_of(*this)); }

}  // namespace weft::detail
