// ConditionVariable: arrivals plus a detail::SyncQueue of parked waits. See
// include/weft/condition_variable.hpp and docs/internals.md
// ("ConditionVariable").
#include <weft/condition_variable.hpp>
#include <weft/detail/fiber_core.hpp>
#include <weft/interrupt.hpp>
#include <weft/this_fiber.hpp>

#include <mutex>
#include <stdexcept>
#include <thread>

namespace weft {

namespace {
constexpr const char* kConditionVariableDestroyed =
    "weft::ConditionVariable destroyed while fibers wait on it";
}  // namespace

ConditionVariable::~ConditionVariable() {
  {
    // Always take the lock, even with nobody waiting: a notifier that made
    // our owner's last waiter return may still hold it (its unlock is its
    // last touch of *this).
    std::unique_lock lk(queue_.lock());
    for (Arrival* a = arriving_.front(); a != nullptr; a = ArrivalList::next(*a)) {
      if (a->notified) continue;  // notified: it returns normally (std allows this)
      a->destroyed = true;
      waiting_.fetch_sub(1, std::memory_order_relaxed);  // under the lock, as a notify
    }
    queue_.wake_all(lk, [this](detail::Waiter* w) {
      detail::SyncQueue::slot_of<detail::WaitSlot>(w).destroyed = true;
      waiting_.fetch_sub(1, std::memory_order_relaxed);
    });
  }
  // Arrivals take the lock once more to unregister; interrupted or timed-out
  // waits decrement waiting_ as their last touch. They may be queued behind
  // us on this worker: yield (masked: a destructor never throws Interrupted).
  for (;;) {
    {
      std::lock_guard lk(queue_.lock());
      // acquire: pairs with a leaving waiter's release decrement.
      if (arriving_.empty() && waiting_.load(std::memory_order_acquire) == 0) break;
    }
    if (detail::current_fiber() != nullptr) {
      Uninterruptible mask;
      this_fiber::yield();
    } else {
      std::this_thread::yield();
    }
  }
}

void ConditionVariable::arrive(Arrival& a, weft::source_location where) {
  // Not this_fiber::check_interrupt(): it may yield for a preemption request,
  // and the caller may hold a std::mutex (see the header).
  detail::enter_yield_point(where);
  std::lock_guard lk(queue_.lock());
  arriving_.push_back(a);
  // relaxed: the caller's unlock() (release), which follows, orders this
  // before any notifier that takes the caller's lock afterwards, and so
  // before its load in notify_*() (write-read coherence).
  waiting_.fetch_add(1, std::memory_order_relaxed);
}

void ConditionVariable::abandon(Arrival& a) noexcept {
  std::unique_lock lk(queue_.lock());
  arriving_.remove(a);
  detail::Waiter* passed_on = nullptr;
  if (a.notified) {
    passed_on = notify_one_locked();  // a notification we cannot use: the next waiter's
  } else if (!a.destroyed) {
    waiting_.fetch_sub(1, std::memory_order_relaxed);  // under the lock: our count
  }
  lk.unlock();  // our last touch of *this
  if (passed_on != nullptr) detail::SyncQueue::resume(passed_on);
}

bool ConditionVariable::settle(Arrival& a, Deadline deadline, weft::source_location where) {
  std::unique_lock lk(queue_.lock());
  arriving_.remove(a);
  if (a.notified || a.destroyed) {
    // Whoever marked us took us off waiting_. The unlock is our last touch.
    lk.unlock();
    if (a.destroyed) throw std::logic_error(kConditionVariableDestroyed);
    return true;
  }
  // Still counted in waiting_, now as a parked wait (one hold of the lock:
  // no notifier sees us in neither place).
  detail::WaitSlot slot;
  bool woken = false;
  try {
    woken = queue_.park_until(lk, slot, {"ConditionVariable::wait", this, where},
                              kConditionVariableDestroyed, deadline);
  } catch (const Interrupted&) {
    // The interrupter claimed our wait first: no notification was spent on
    // us (a notifier that met us skipped to the next waiter). release: our
    // last touch of *this, before the destructor's acquire load sees it.
    waiting_.fetch_sub(1, std::memory_order_release);
    throw;
  }  // std::logic_error (destroyed): the destructor took us off waiting_
  // Woken: the notifier took us off waiting_ and we must not touch *this
  // (it may be destroyed already). Timed out: our last touch, as above.
  if (!woken) waiting_.fetch_sub(1, std::memory_order_release);
  return woken;
}

detail::Waiter* ConditionVariable::notify_one_locked() noexcept {
  // Parked waits first: they are the oldest. claim() skips waits already
  // claimed by an interrupter or a timer, so the notification goes on to the
  // next waiter instead of being lost on one that consumes nothing.
  if (detail::Waiter* w = queue_.claim()) {
    waiting_.fetch_sub(1, std::memory_order_relaxed);  // under the lock
    return w;
  }
  for (Arrival* a = arriving_.front(); a != nullptr; a = ArrivalList::next(*a)) {
    if (a->notified || a->destroyed) continue;
    a->notified = true;  // it will not park (settle())
    waiting_.fetch_sub(1, std::memory_order_relaxed);
    break;
  }
  return nullptr;
}

void ConditionVariable::notify_one() noexcept {
  // acquire: see arrive(); a waiter registered before the notifier took the
  // caller's lock is counted here. 0: nobody to wake, no lock taken.
  if (waiting_.load(std::memory_order_acquire) == 0) return;
  std::unique_lock lk(queue_.lock());
  detail::Waiter* w = notify_one_locked();
  lk.unlock();  // "claim, unlock, resume": the woken waiter may destroy *this
  if (w != nullptr) detail::SyncQueue::resume(w);
}

void ConditionVariable::notify_all() noexcept {
  if (waiting_.load(std::memory_order_acquire) == 0) return;  // as notify_one()
  std::unique_lock lk(queue_.lock());
  for (Arrival* a = arriving_.front(); a != nullptr; a = ArrivalList::next(*a)) {
    if (a->notified || a->destroyed) continue;
    a->notified = true;
    waiting_.fetch_sub(1, std::memory_order_relaxed);
  }
  queue_.wake_all(lk,
                  [this](detail::Waiter*) { waiting_.fetch_sub(1, std::memory_order_relaxed); });
}

}  // namespace weft
