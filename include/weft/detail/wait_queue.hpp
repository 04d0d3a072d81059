// The one wait primitive. Every blocking operation in weft (await, sleep,
// Deferred, Channel, Mutex, Semaphore, Latch) parks on a WaitQueue.
//
// Guarantees:
// - A waiter is ended exactly once, by whoever wins a CAS on its owner's wait
//   word: a waker (woken), a timer (timed_out) or an interrupter
//   (interrupted). Only the winner resumes the owner, so a wake-up that races
//   an interrupt either completes the wait (the waker won) or is passed on to
//   the next waiter (the interrupter won). Nothing is lost, nothing resumed
//   twice.
// - An interrupted or timed-out waiter is removed from the queue by its owner
//   before wait() returns, under the queue lock, so primitives need no
//   clean-up of their own.
// - The queue lock is also the primitive's lock: check the condition, enqueue
//   and suspend without a lost-wake-up window.
// See docs/internals.md for the state machine.
#pragma once

#include <weft/detail/spin_lock.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>

namespace weft::detail {

// WaitStatus says how a wait ended.
enum class WaitStatus : std::uint8_t {
  idle = 0,         // not waiting
  waiting = 1,      // parked, nobody has claimed it yet
  woken = 2,        // a waker completed the wait (payload, if any, was delivered)
  interrupted = 3,  // an interrupt ended it; the queue was left untouched
  timed_out = 4,    // the deadline passed first
};

// WaitOwner is what waits: a fiber or a plain thread. Its wait word encodes
// (epoch, interruptible, status); see docs/internals.md.
class WaitOwner {
 public:
  static constexpr std::uint64_t kStatusMask = 0x7f;
  static constexpr std::uint64_t kInterruptibleBit = 0x80;
  static constexpr int kEpochShift = 8;

  // begin_wait() opens a new wait and returns its epoch.
  std::uint64_t begin_wait(bool interruptible) noexcept;
  // try_claim() ends wait `epoch` with `to` if it is still waiting; true for the one winner.
  bool try_claim(std::uint64_t epoch, WaitStatus to) noexcept;
  // status() is the current wait's status.
  WaitStatus status() const noexcept {
    return static_cast<WaitStatus>(wait_word_.load(std::memory_order_acquire) & kStatusMask);
  }
  // resume() makes the owner continue; called once, by the claim winner.
  virtual void resume() noexcept = 0;

 protected:
  ~WaitOwner() = default;
  std::atomic<std::uint64_t> wait_word_{0};
};

// Waiter is a node on the waiting context's stack, linked in one WaitQueue.
struct Waiter {
  Waiter* prev = nullptr;
  Waiter* next = nullptr;
  WaitOwner* owner = nullptr;
  std::uint64_t epoch = 0;
  void* payload = nullptr;  // primitive-specific hand-off slot
  bool linked = false;
};

// WaitOptions tunes one wait.
struct WaitOptions {
  std::optional<std::chrono::steady_clock::time_point> deadline;  // none: wait forever
  bool interruptible = true;   // false: an interrupt stays pending until a later yield point
  const char* what = nullptr;  // shown by Runtime::dump() while parked ("Channel::receive")
};

// throw_wait_interrupted() (in fiber_core.hpp) throws Interrupted for the
// current fiber after a wait ended with WaitStatus::interrupted.

// WaitQueue is an intrusive FIFO of waiters guarded by lock().
class WaitQueue {
 public:
  WaitQueue() = default;
  WaitQueue(const WaitQueue&) = delete;
  WaitQueue& operator=(const WaitQueue&) = delete;

  // lock() is the queue's (and its primitive's) lock.
  SpinLock& lock() noexcept WEFT_RETURN_CAPABILITY(lock_) { return lock_; }
  // empty() is true when nobody waits (lock held).
  bool empty() const noexcept WEFT_REQUIRES(lock_) { return head_ == nullptr; }
  // front() is the oldest waiter, still linked (lock held).
  Waiter* front() const noexcept WEFT_REQUIRES(lock_) { return head_; }

  // wait() parks the calling fiber or thread on this queue. `lk` must hold
  // lock(); it is released while parked and NOT re-acquired. On `woken` the
  // waker unlinked `w` and filled w.payload if the primitive hands off data;
  // on any other status `w` has been unlinked here and the queue is untouched.
  WaitStatus wait(std::unique_lock<SpinLock>& lk, Waiter& w, const WaitOptions& opts = {})
      WEFT_RELEASE(lock_);

  // claim_one() pops waiters in FIFO order until one is claimed as woken and
  // returns it (lock held), or nullptr. Fill its payload, release the lock,
  // then call resume(w). Waiters that lost to an interrupt are just dropped.
  Waiter* claim_one() noexcept WEFT_REQUIRES(lock_);
  // resume() continues a claimed waiter's owner; `w` is dead afterwards.
  static void resume(Waiter* w) noexcept { w->owner->resume(); }
  // wake_one() claims and resumes one waiter; true if there was one. Takes the lock.
  bool wake_one() noexcept;
  // wake_all() claims and resumes every waiter; returns how many. Takes the lock.
  std::size_t wake_all() noexcept;
  // wake_all_locked() is wake_all() for a caller that holds the lock; it
  // releases `lk` before resuming.
  std::size_t wake_all_locked(std::unique_lock<SpinLock>& lk) noexcept WEFT_RELEASE(lock_);

  // push_back() links w at the tail (lock held). wait() calls it.
  void push_back(Waiter& w) noexcept WEFT_REQUIRES(lock_);
  // unlink() removes w if linked (lock held).
  void unlink(Waiter& w) noexcept WEFT_REQUIRES(lock_);

 private:
  SpinLock lock_;
  Waiter* head_ WEFT_GUARDED_BY(lock_) = nullptr;
  Waiter* tail_ WEFT_GUARDED_BY(lock_) = nullptr;
};

}  // namespace weft::detail
