// Mutex: a fiber-aware mutual-exclusion lock (Lockable: works with
// std::lock_guard, std::unique_lock and std::scoped_lock).
//
// Memory ordering: everything an owner did before unlock() happens-before
// everything the next owner does after its lock() or successful try_lock()
// returns.
//
// Fairness: ownership passes first come, first served. unlock() hands the
// mutex directly to the oldest waiter (it never becomes free in between), so
// a newcomer never overtakes a waiter; try_lock() fails while anyone waits.
//
// Interruption: lock() is an interruptible yield point: it throws
// weft::Interrupted when an interrupt is pending on entry or arrives while it
// waits, and an interrupted waiter never becomes the owner. Once lock()
// returns, the caller owns the mutex even if an interrupt arrived meanwhile.
// A lock held by a guard (std::lock_guard...) is released while an
// interrupted fiber unwinds, like any RAII resource. unlock() and try_lock()
// never wait. From a plain thread, lock() blocks the thread.
//
// Timed waits: try_lock_until(deadline) / try_lock_for(d) (as
// std::timed_mutex, so std::unique_lock's timed calls work) return false when
// the deadline passed before the mutex was handed over: the caller does not
// own it, and the unlocker that meets the timed-out waiter hands the mutex to
// the next waiter instead. Interruptible yield points exactly like lock(); a
// deadline already passed does not park (it is then try_lock() that also
// does not overtake waiters).
//
// Ownership: the owner is a fiber (or a plain thread), not a worker thread,
// so a fiber may lock on one worker and unlock on another. Locking a mutex
// the caller already owns throws std::logic_error (it would wait forever);
// unlock() by anyone but the owner is a debug assertion (WEFT_ASSERT).
//
// Conditions: wait for one under the mutex with weft::ConditionVariable;
// std::condition_variable_any would block the worker thread (and hang the
// runtime when the notifier needs that worker).
//
// Lifetime: a Mutex may be destroyed by its last owner right after lock()
// returned, even if the unlock() that handed it over has not returned yet
// (the destructor waits for it to release the internal lock). Destroying a
// Mutex while fibers wait to lock it wakes them with std::logic_error.
#pragma once

#include <weft/deadline.hpp>
#include <weft/detail/sync_queue.hpp>
#include <weft/fiber_id.hpp>

#include <chrono>
#include <cstddef>
#include <weft/source_location.hpp>

namespace weft {

// Mutex is a FIFO, hand-off, fiber-aware lock (see the top of this header).
class Mutex {
 public:
  // Mutex() is unlocked.
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;
  // ~Mutex() wakes fibers still waiting to lock it with std::logic_error.
  ~Mutex() = default;

  // lock() takes the mutex, waiting while another fiber owns it. A yield point.
  // `where` (every blocking call has it) is the caller's line, for dumps.
  void lock(weft::source_location where = weft::source_location::current());
  // try_lock() takes the mutex if it is free and nobody waits. Never waits.
  [[nodiscard]] bool try_lock();
  // try_lock_until() takes the mutex, waiting while another fiber owns it
  // until `deadline`; false (not owned) when the deadline passed first. A
  // yield point.
  [[nodiscard("false means the mutex is not owned")]] bool try_lock_until(
      Deadline deadline, weft::source_location where = weft::source_location::current());
  // try_lock_for() is try_lock_until(this_fiber::now() + d). A yield point.
  [[nodiscard("false means the mutex is not owned")]] bool try_lock_for(
      std::chrono::nanoseconds d, weft::source_location where = weft::source_location::current()) {
    return try_lock_until(detail::deadline_after(d), where);
  }
  // unlock() releases the mutex, handing it to the oldest waiter if any.
  void unlock();

  // owner() is the owning fiber (or plain thread), FiberId() when unlocked (a snapshot).
  FiberId owner() const;
  // waiters() is how many fibers/threads wait to lock (diagnostics, tests).
  std::size_t waiters() const noexcept { return queue_.waiters(); }

 private:
  struct LockSlot : detail::WaitSlot {
    FiberId who;  // the waiter, made owner by the unlocker that claims it
  };
  FiberId owner_ WEFT_GUARDED_BY(queue_.lock());  // FiberId() when unlocked
  bool locked_ WEFT_GUARDED_BY(queue_.lock()) = false;
  mutable detail::SyncQueue queue_;  // last: destroyed first, waking waiters
};

}  // namespace weft
