// ConditionVariable: a fiber-aware condition variable for weft::Mutex,
// std::unique_lock<weft::Mutex> or any BasicLockable (the contract of
// std::condition_variable_any, plus interruption and deadlines).
//
// Do not use std::condition_variable(_any) in a fiber: its wait blocks the
// worker thread, so the fiber that would notify it may never run (with
// weft::Mutex, the runtime hangs silently). This is the fiber's one.
//
// Memory ordering: as std::condition_variable_any. wait() releases the lock
// and re-acquires it, so everything a notifier did under the lock before it
// unlocked happens-before everything the waiter does after wait() returns.
// No lost wake-up: a waiter is registered before wait() releases the lock,
// so a notify_one()/notify_all() made after the notifier took the lock (or
// after it saw anything the waiter did after its wait began) finds it.
//
// Wake-ups: a wait returns only when a notification chose it, its deadline
// passed, or it throws; there are no spurious wake-ups (the predicate forms
// loop anyway, as the std contract allows them). notify_one() wakes the
// oldest waiter; notify_all() every waiter present when it runs. A
// notification with nobody waiting is not remembered.
//
// Interruption: wait(), wait_until() and wait_for() are interruptible yield
// points. An interrupt pending on entry throws weft::Interrupted before the
// lock is released; one that arrives while the caller waits ends the wait.
// Either way the lock is held again before Interrupted (or any exception)
// leaves the call: it is re-acquired inside an Uninterruptible region, so the
// pending interrupt cannot skip it (it is delivered at the next yield point
// instead), and a waiter that was notified before the interrupt came returns
// normally with its notification rather than losing it. A notification and an interrupt racing for
// one waiter never lose the notification: whichever claims the waiter first wins. If the
// notification wins, wait() returns normally (the interrupt stays pending);
// if the interrupt wins, the waiter consumed nothing and notify_one() goes to
// the next waiter instead (as Java's Object.notify and Go's sync.Cond do).
// docs/internals.md, "ConditionVariable", has the protocol.
//
// Timed waits: wait_until(lock, deadline) / wait_for(lock, d) return
// std::cv_status::timeout when the deadline passed first (with the lock held
// again); the predicate forms return pred() then. A deadline already passed
// does not park, but the lock is still released and re-acquired. Deadlines
// are on this_fiber::now()'s clock (virtual in a deterministic runtime).
//
// Locks: the lock is released while the caller waits, so `L` may be:
// - weft::Mutex / std::unique_lock<weft::Mutex> (or any weft-aware lock):
//   always safe;
// - std::mutex / std::unique_lock<std::mutex>: only if no yield point ever
//   runs while a fiber holds it (wait() itself releases it before parking).
//   Re-acquiring blocks the worker thread while another holder is in its
//   critical section, and a std::mutex held across a yield point may be
//   unlocked on another thread (undefined) or wanted by a fiber of the same
//   worker (deadlock). Prefer weft::Mutex.
// From a plain thread every wait blocks the thread, as with the other
// primitives; plain threads and fibers may share one ConditionVariable.
//
// Lifetime: as std::condition_variable_any, it may be destroyed once every
// waiter has been notified, even before they returned. Destroying it while
// waits are still waiting wakes them with std::logic_error ("weft::
// ConditionVariable destroyed while fibers wait on it"), the lock held again.
//
// Misuse: calling wait() without holding the lock is whatever L::unlock()
// does (std::unique_lock throws std::system_error; weft::Mutex asserts); the
// waiter is then not registered and the lock is not re-acquired. If the
// re-acquisition itself throws, that exception leaves wait() and the lock is
// not held (std::condition_variable_any calls std::terminate there).
#pragma once

#include <weft/deadline.hpp>
#include <weft/detail/intrusive_list.hpp>
#include <weft/detail/sync_queue.hpp>
#include <weft/interrupt.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <weft/source_location.hpp>
#include <utility>

namespace weft {

namespace detail {
// BasicLockable is what ConditionVariable releases and re-acquires.
template <class L>
concept BasicLockable = requires(L& l) {
  l.lock();
  l.unlock();
};
}  // namespace detail

// ConditionVariable lets fibers and threads wait until notified (see the top
// of this header).
class ConditionVariable {
 public:
  // ConditionVariable() has no waiters.
  ConditionVariable() = default;
  ConditionVariable(const ConditionVariable&) = delete;
  ConditionVariable& operator=(const ConditionVariable&) = delete;
  // ~ConditionVariable() wakes waits still waiting with std::logic_error and
  // waits for every wait to stop touching it.
  ~ConditionVariable();

  // wait() releases `lock`, waits for a notification, re-acquires `lock`.
  // An interruptible yield point; the lock is held again before any throw.
  template <detail::BasicLockable L>
  void wait(L& lock, weft::source_location where = weft::source_location::current()) {
    (void)wait_until(lock, Deadline::max(), where);
  }
  // wait(lock, pred) waits until pred() (called with the lock held) is true.
  template <detail::BasicLockable L, class P>
  void wait(L& lock, P pred, weft::source_location where = weft::source_location::current()) {
    while (!pred()) wait(lock, where);
  }
  // wait_until() is wait() that gives up at `deadline`: cv_status::timeout
  // (the lock held again) when the deadline passed before a notification.
  template <detail::BasicLockable L>
  std::cv_status wait_until(L& lock, Deadline deadline,
                            weft::source_location where = weft::source_location::current());
  // wait_until(lock, deadline, pred) waits until pred() or the deadline;
  // returns pred() (false: timed out with the predicate still false).
  template <detail::BasicLockable L, class P>
  bool wait_until(L& lock, Deadline deadline, P pred,
                  weft::source_location where = weft::source_location::current()) {
    while (!pred())
      if (wait_until(lock, deadline, where) == std::cv_status::timeout) return pred();
    return true;
  }
  // wait_for() is wait_until(lock, this_fiber::now() + d).
  template <detail::BasicLockable L>
  std::cv_status wait_for(L& lock, std::chrono::nanoseconds d,
                          weft::source_location where = weft::source_location::current()) {
    return wait_until(lock, detail::deadline_after(d), where);
  }
  // wait_for(lock, d, pred) is wait_until(lock, this_fiber::now() + d, pred).
  template <detail::BasicLockable L, class P>
  bool wait_for(L& lock, std::chrono::nanoseconds d, P pred,
                weft::source_location where = weft::source_location::current()) {
    return wait_until(lock, detail::deadline_after(d), std::move(pred), where);
  }

  // notify_one() wakes the oldest waiter, if any. Never waits.
  void notify_one() noexcept;
  // notify_all() wakes every waiter. Never waits.
  void notify_all() noexcept;

  // waiters() is how many waits have begun and are neither notified nor
  // gone (a snapshot, for diagnostics and tests).
  std::size_t waiters() const noexcept { return waiting_.load(std::memory_order_acquire); }

 private:
  // Arrival is a wait between registering (under the caller's lock) and
  // parking (after releasing it): a notification in between is recorded
  // here and the wait does not park. On the waiter's stack; its fields are
  // guarded by queue_.lock().
  struct Arrival {
    detail::ListHook<Arrival> hook;
    bool notified = false;   // a notification chose this wait
    bool destroyed = false;  // the ConditionVariable is being destroyed
  };
  using ArrivalList = detail::IntrusiveList<Arrival, &Arrival::hook>;

  // arrive() is the yield point's entry check (Interrupted: nothing changed,
  // the lock still held), then registers `a`.
  void arrive(Arrival& a, weft::source_location where);
  // abandon() unregisters `a` when the caller's unlock() threw, passing a
  // notification it received on to another waiter.
  void abandon(Arrival& a) noexcept;
  // settle() unregisters `a` and parks unless it was notified meanwhile;
  // true when notified, false when the deadline passed. Throws Interrupted or
  // std::logic_error (destroyed). The caller's lock is not held.
  bool settle(Arrival& a, Deadline deadline, weft::source_location where);
  // notify_one_locked() picks the waiter notify_one() wakes: a parked one,
  // claimed and returned (resume it after unlocking), or an arrival, marked.
  detail::Waiter* notify_one_locked() noexcept WEFT_REQUIRES(queue_.lock());
  // relock() re-acquires the caller's lock, masked: a pending interrupt
  // cannot make it throw (the lock is held again before any throw).
  template <class L>
  static void relock(L& lock) {
    Uninterruptible mask;
    lock.lock();
  }

  // Waits between arrive() and the end of their wait that no notification
  // has claimed yet. +1 in arrive() (before the caller releases its lock);
  // -1 under queue_.lock() by the notification (or the destructor) that
  // claims or marks a wait, or by a timed-out or interrupted waiter itself,
  // as its last touch of *this. notify_*() return at once when it is 0.
  std::atomic<std::size_t> waiting_{0};
  // Waits registered but not parked yet, oldest first.
  ArrivalList arriving_ WEFT_GUARDED_BY(queue_.lock());
  detail::SyncQueue queue_;  // parked waits; last: destroyed first
};

template <detail::BasicLockable L>
std::cv_status ConditionVariable::wait_until(L& lock, Deadline deadline,
                                             weft::source_location where) {
  Arrival arrival;
  arrive(arrival, where);  // registered before the lock is released: no lost wake-up
  try {
    lock.unlock();
  } catch (...) {
    abandon(arrival);
    throw;
  }
  bool notified = false;
  try {
    notified = settle(arrival, deadline, where);
  } catch (...) {
    relock(lock);  // held again before Interrupted (or any throw) propagates
    throw;
  }
  relock(lock);
  return notified ? std::cv_status::no_timeout : std::cv_status::timeout;
}

}  // namespace weft
