// detail::SyncQueue (the wait-queue wrapper of every sync primitive) and the
// non-template part of Deferred. See include/weft/deferred.hpp.
#include <weft/deferred.hpp>
#include <weft/detail/assert.hpp>
#include <weft/detail/fiber_core.hpp>
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
  // Waiters that lost their wait to an interrupt are resumed by their
  // interrupter and take the lock once more to unlink themselves. They may be
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
void SyncQueue::park(std::unique_lock<SpinLock>& lk, WaitSlot& slot, const char* what,
                     const char* destroyed_message) WEFT_NO_THREAD_SAFETY_ANALYSIS {
  Waiter w;
  w.payload = &slot;
  WaitOptions o;
  o.what = what;
  // release: what we did before parking happens-before an acquire read of
  // waiters() that counts us (tests rely on it to know we are parked).
  in_flight_.fetch_add(1, std::memory_order_release);
  const WaitStatus st = queue_.wait(lk, w, o);
  if (st == WaitStatus::woken) {
    // The claimer already took us off in_flight_; the slot is on our stack.
    if (slot.destroyed) throw std::logic_error(destroyed_message);
    return;
  }
  WEFT_ASSERT(st == WaitStatus::interrupted, "untimed wait on {} ended with status {}", what,
              static_cast<int>(st));
  // release: our unlink (inside wait()) happens-before the destructor's
  // acquire load that sees the count drop. This is our last touch of *this.
  in_flight_.fetch_sub(1, std::memory_order_release);
  throw_wait_interrupted();
}

Waiter* SyncQueue::claim() noexcept {
  Waiter* w = queue_.claim_one();
  // release: the claimed waiter never touches the queue again.
  if (w != nullptr) in_flight_.fetch_sub(1, std::memory_order_release);
  return w;
}

void SyncQueue::resume_chain(Waiter* chain) noexcept {
  while (chain != nullptr) {
    Waiter* w = chain;
    chain = w->next;  // read before resume(): w dies with its owner's frame
    resume(w);
  }
}

// ---------------------------------------------------------------------------
// Deferred

void throw_deferred_twice() {
  throw std::logic_error("weft::Deferred: completed twice (succeed/fail called after completion)");
}

void check_deferred_failure(const std::exception_ptr& error, const char* what) {
  if (!error)
    throw std::invalid_argument(std::string("weft::Deferred::") + what + ": null exception_ptr");
}

void DeferredBase::wait_done() {
  this_fiber::check_interrupt();  // a yield point even when already complete
  if (done()) return;
  std::unique_lock lk(queue_.lock());
  if (done_.load(std::memory_order_relaxed)) return;  // the lock orders it
  WaitSlot slot;
  queue_.park(lk, slot, "Deferred::await", kDeferredDestroyed);
}

}  // namespace weft::detail
