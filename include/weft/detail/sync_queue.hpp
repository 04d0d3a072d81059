// detail::SyncQueue: the one waiter primitive of weft's sync primitives
// (Deferred, Channel, Mutex, Semaphore, Latch, the race completion queue),
// built on detail::WaitQueue.
//
// Guarantees:
// - One park path: every waiter parks through park_until() (park() is the
//   untimed call of it), so the preamble (hand-off slot, in-flight count,
//   wait options) and the three ways a wait ends exist once.
// - A wait ends exactly once, by whoever wins the CAS on the waiter's wait
//   word: a waker (woken), the deadline's timer (timed_out) or an interrupter
//   (interrupted). A waiter claimed as woken takes its hand-off (an item, a
//   permit, the lock) even if its deadline passed meanwhile: park_until()
//   returns true. A timed-out or interrupted waiter took nothing, and a
//   waker that meets it in the queue skips it for the next waiter, so no
//   wake-up is ever spent on it.
// - Hand-off protocol ("claim, chain, unlock, resume"): a waker claims a
//   waiter under lock() (claim()), moves ownership into its slot, releases
//   the lock, then resume()s it. A claimed waiter never touches the
//   primitive again except what the primitive's contract allows.
#pragma once

#include <weft/deadline.hpp>
#include <weft/detail/spin_lock.hpp>
#include <weft/detail/thread_annotations.hpp>
#include <weft/detail/wait_queue.hpp>

#include <atomic>
#include <cstddef>
#include <mutex>

namespace weft::detail {

// WaitSlot is the start of every waiter's hand-off slot (Waiter::payload).
// Wakers fill the derived part; a dying primitive sets `destroyed` instead.
struct WaitSlot {
  bool destroyed = false;  // the primitive was destroyed; nothing was handed over
};

// SyncQueue is a sync primitive's WaitQueue plus the number of waits in
// flight, so that the primitive's destructor can wake its parked waiters with
// an error and then wait for interrupted or timed-out ones to finish leaving
// the queue (they still take its lock once on their way out).
class SyncQueue {
 public:
  SyncQueue() = default;
  SyncQueue(const SyncQueue&) = delete;
  SyncQueue& operator=(const SyncQueue&) = delete;
  // ~SyncQueue() wakes every parked waiter with `destroyed` set, then waits
  // (yielding) until interrupted and timed-out waiters have left the queue.
  ~SyncQueue();

  // lock() guards the queue and the primitive's own state.
  SpinLock& lock() noexcept WEFT_RETURN_CAPABILITY(queue_.lock()) { return queue_.lock(); }

  // park_until() waits with `slot` as the hand-off slot until a waker claims
  // us or `deadline` passes (Deadline::max(): no deadline); `lk` holds lock()
  // and is released (not re-acquired). True once a waker claimed us and
  // filled the slot, even if the deadline passed meanwhile. False when the
  // deadline passed first (a deadline already passed on entry does not
  // park): nothing was handed over and we are off the queue. Throws
  // Interrupted if an interrupt ended the wait (nothing was handed over),
  // std::logic_error(destroyed_message) if the primitive died. The caller
  // checked for a pending interrupt on entry (the yield point's entry check).
  // `interruptible` false: an interrupt stays pending for a later yield
  // point (the masked awaits of a fiber's end).
  bool park_until(std::unique_lock<SpinLock>& lk, WaitSlot& slot, const WaitSite& site,
                  const char* destroyed_message, Deadline deadline, bool interruptible = true)
      WEFT_RELEASE(queue_.lock()) {
    return finish_park(park_status(lk, slot, site, deadline, interruptible), slot,
                       destroyed_message);
  }
  // park_status() is park_until() without its throws: how the wait ended
  // (a deadline already passed on entry is timed_out, without parking).
  // finish_park() is park_until()'s ending for that status, inlined into the
  // caller. The hot waits call the two themselves, with the throw after
  // their lock's scope has closed: an Interrupted then starts in the frame
  // the user called, with no landing pad of ours in it (each frame and each
  // landing pad costs the unwinder; docs/performance.md, "Interruption:
  // frames of our own").
  WaitStatus park_status(std::unique_lock<SpinLock>& lk, WaitSlot& slot, const WaitSite& site,
                         Deadline deadline, bool interruptible = true) noexcept
      WEFT_RELEASE(queue_.lock());
  [[gnu::always_inline]] static bool finish_park(WaitStatus st, const WaitSlot& slot,
                                                 const char* destroyed_message) {
    if (st == WaitStatus::woken) {
      if (slot.destroyed) [[unlikely]]
        throw_destroyed(destroyed_message);
      return true;
    }
    if (st == WaitStatus::interrupted) throw_wait_interrupted();
    return false;
  }
  // park() is park_until() without a deadline: returns once claimed.
  void park(std::unique_lock<SpinLock>& lk, WaitSlot& slot, const WaitSite& site,
            const char* destroyed_message) WEFT_RELEASE(queue_.lock()) {
    (void)park_until(lk, slot, site, destroyed_message, Deadline::max());
  }

  // claim() pops the oldest waiter still waiting and claims it (lock held);
  // nullptr when none. Fill its slot, release the lock, then resume() it.
  Waiter* claim() noexcept WEFT_REQUIRES(queue_.lock());
  // slot_of() is a claimed waiter's slot, as the type the primitive parked with.
  template <class Slot>
  static Slot& slot_of(Waiter* w) noexcept {
    return static_cast<Slot&>(*static_cast<WaitSlot*>(w->payload));
  }
  // resume() continues a claimed waiter; `w` is dead afterwards.
  static void resume(Waiter* w) noexcept { WaitQueue::resume(w); }
  // wake_all() claims every waiter, calls fill(w) on each under the lock,
  // releases `lk`, then resumes them all; returns how many.
  // Not analysed: clang 14 cannot follow `lk`, a guard passed in.
  template <class Fill>
  std::size_t wake_all(std::unique_lock<SpinLock>& lk, Fill&& fill) noexcept
      WEFT_RELEASE(queue_.lock()) WEFT_NO_THREAD_SAFETY_ANALYSIS {
    Waiter* claimed = nullptr;
    std::size_t n = 0;
    while (Waiter* w = claim()) {
      fill(w);
      w->chain = claimed;
      claimed = w;
      ++n;
    }
    lk.unlock();
    resume_chain(claimed);
    return n;
  }
  // resume_chain() resumes claimed waiters chained through Waiter::chain.
  static void resume_chain(Waiter* chain) noexcept;

  // throw_destroyed() throws std::logic_error(message): the primitive died
  // while we waited on it.
  [[noreturn]] static void throw_destroyed(const char* message);
  // waiters() is how many waits are in flight: parked, or interrupted or
  // timed out and still leaving. A snapshot, for diagnostics and tests.
  std::size_t waiters() const noexcept { return in_flight_.load(std::memory_order_acquire); }

 private:
  WaitQueue queue_;
  // Waits that may still touch this queue. +1 by the waiter before it parks,
  // -1 by whoever claims it as woken, or by the waiter itself after an
  // interrupted or timed-out wait has unlinked it. The destructor waits for 0.
  std::atomic<std::size_t> in_flight_{0};
};

}  // namespace weft::detail
