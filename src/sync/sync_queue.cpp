// detail::SyncQueue, the one waiter primitive of every sync primitive. See
// include/weft/detail/sync_queue.hpp.
#include <weft/detail/assert.hpp>
#include <weft/detail/fiber_core.hpp>
#include <weft/detail/sync_queue.hpp>
#include <weft/interrupt.hpp>
#include <weft/this_fiber.hpp>

#include <stdexcept>
#include <string>
#include <thread>

namespace weft::detail {

// ---------------------------------------------------------------------------
// SyncQueue

SyncQueue::~SyncQueue() {
  // Always take the lock, even with nobody waiting: a waker that made our
  // owner's last user return (a succeed() seen through done(), an unlock()
  // that handed the mutex over) may still hold it. Its unlock() is its last
  // touch of this object (it resumes waiters only after releasing it), so
  // once we hold the lock nobody else will touch it (as absl::Notification).
  {
    std::unique_lock lk(queue_.lock());
    wake_all(lk, [](Waiter* w) { static_cast<WaitSlot*>(w->payload)->destroyed = true; });
  }
  // Waiters that lost their wait to an interrupt or a deadline are resumed by
  // their interrupter or timer and take the lock once more to unlink themselves. They may be
  // queued behind us on this worker: yield (masked, so a destructor never
  // throws Interrupted) rather than spin.
  while (in_flight_.load(std::memory_order_acquire) != 0) {
    if (current_fiber() != nullptr) {
      Uninterruptible mask;
      this_fiber::yield();
    } else {
      std::this_thread::yield();
    }
  }
}

// Not analysed: clang 14 cannot follow `lk`, a guard passed in.
WaitStatus SyncQueue::park_status(std::unique_lock<SpinLock>& lk, WaitSlot& slot,
                                  const WaitSite& site, Deadline deadline,
                                  bool interruptible) noexcept WEFT_NO_THREAD_SAFETY_ANALYSIS {
  WaitOptions o;
  o.site = site;
  o.interruptible = interruptible;
  if (deadline != Deadline::max()) {
    // Already passed: give up without parking (the caller's fast path under
    // this lock already failed, as std::timed_mutex::try_lock_until does).
    if (deadline <= this_fiber::now()) {
      lk.unlock();
      return WaitStatus::timed_out;
    }
    o.deadline = deadline;
  }
  Waiter w;
  w.payload = &slot;
  // release: what we did before parking happens-before an acquire read of
  // waiters() that counts us (tests rely on it to know we are parked).
  in_flight_.fetch_add(1, std::memory_order_release);
  const WaitStatus st = queue_.wait(lk, w, o);
  // Woken: a waker won the wait word's CAS (maybe as the timer fired): the
  // hand-off is ours. The claimer already took us off in_flight_; the slot is
  // on our caller's stack.
  if (st == WaitStatus::woken) return st;
  WEFT_ASSERT(st == WaitStatus::interrupted || (st == WaitStatus::timed_out && o.deadline),
              "wait on {} ended with status {}", site.what, static_cast<int>(st));
  // release: our unlink (inside wait()) happens-before the destructor's
  // acquire load that sees the count drop. This is our last touch of *this.
  in_flight_.fetch_sub(1, std::memory_order_release);
  return st;
}

void SyncQueue::throw_destroyed(const char* message) { throw std::logic_error(message); }

Waiter* SyncQueue::claim() noexcept {
  Waiter* w = queue_.claim_one();
  // release: the claimed waiter never touches the queue again.
  if (w != nullptr) in_flight_.fetch_sub(1, std::memory_order_release);
  return w;
}

void SyncQueue::resume_chain(Waiter* chain) noexcept {
  while (chain != nullptr) {
    Waiter* w = chain;
    chain = w->chain;  // read before resume(): w dies with its owner's frame
    resume(w);
  }
}

// ---------------------------------------------------------------------------
// Deadlines

Deadline deadline_after(std::chrono::nanoseconds d) noexcept {
  const Deadline now = this_fiber::now();
  if (d <= std::chrono::nanoseconds::zero()) return now;
  // Saturate: now + d would overflow the clock's representation.
  if (d >= Deadline::max() - now) return Deadline::max();
  return now + std::chrono::duration_cast<Deadline::duration>(d);
}

}  // namespace weft::detail
