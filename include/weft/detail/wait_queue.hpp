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

#include <weft/cause.hpp>
#include <weft/detail/intrusive_list.hpp>
#include <weft/detail/spin_lock.hpp>
#include <weft/interrupted.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <weft/source_location.hpp>

namespace weft::detail {

// WaitStatus says how a wait ended.
enum class WaitStatus : std::uint8_t {
  idle = 0,         // not waiting
  waiting = 1,      // parked, nobody has claimed it yet
  woken = 2,        // a waker completed the wait (payload, if any, was delivered)
  interrupted = 3,  // an interrupt ended it; the queue was left untouched
  timed_out = 4,    // the deadline passed first
};

// WaitSite says what a wait is for and where the user made it. The wait
// module hands it to the owner's park(), which records it for
// Runtime::dump() and the trace (docs/debugging.md).
struct WaitSite {
  const char* what = "wait";      // the call, e.g. "Channel::receive" (a string literal)
  const void* object = nullptr;   // the primitive waited on, or nullptr
  weft::source_location where{};  // the user's call site (a defaulted argument of the API)
};

// WaitOwner is what waits: a fiber or a plain thread (the "parker"). Its
// wait word encodes (epoch, interruptible, status); only this module decodes
// it (docs/internals.md, "The wait word"). The owner implements the four
// virtuals; the wait module drives them in WaitQueue::wait().
class WaitOwner {
 public:
  // begin_wait() opens a new wait and returns its epoch (seq_cst: see
  // interrupt_pending_after_begin()).
  std::uint64_t begin_wait(bool interruptible) noexcept;
  // try_claim() ends wait `epoch` with `to` if it is still waiting; true for the one winner.
  bool try_claim(std::uint64_t epoch, WaitStatus to) noexcept;
  // try_claim_interrupted() is the interrupter's side of the Dekker pair:
  // after it recorded its request (seq_cst), it claims the current wait as
  // interrupted if that wait is waiting interruptibly; true for the winner,
  // which must then unpark() the owner.
  bool try_claim_interrupted() noexcept;
  // status() is the current wait's status.
  WaitStatus status() const noexcept {
    return static_cast<WaitStatus>(wait_word_.load(std::memory_order_acquire) & kStatusMask);
  }
  // waiting_masked() is true while the owner waits and an interrupt cannot
  // end the wait (a snapshot, for dumps).
  bool waiting_masked() const noexcept {
    const std::uint64_t word = wait_word_.load(std::memory_order_relaxed);
    return (word & kStatusMask) == static_cast<std::uint64_t>(WaitStatus::waiting) &&
           (word & kInterruptibleBit) == 0;
  }

  // --- the parker interface (implemented by FiberCore and the thread parker)
  // interruptible_now() is true when this owner may be interrupted here.
  virtual bool interruptible_now() const noexcept = 0;
  // interrupt_pending_after_begin() reads the owner's interrupt request after
  // begin_wait(); seq_cst, the other half of the Dekker pair with
  // try_claim_interrupted().
  virtual bool interrupt_pending_after_begin() const noexcept = 0;
  // park() suspends the owner until unpark(); a deadline claims the wait as
  // timed_out when it passes. `site` names the wait in dumps and traces.
  // Called with the queue lock released.
  virtual void park(std::optional<std::chrono::steady_clock::time_point> deadline,
                    const WaitSite& site, std::uint64_t epoch) noexcept = 0;
  // unpark() makes the owner continue; called once per wait, by the claim winner.
  virtual void unpark() noexcept = 0;
  // interrupt_scoped() is true when the interrupt that ended the wait is the
  // deadline of a timeout running on the owner's own stack (a
  // ScopeInterrupted, include/weft/detail/timeout_scope.hpp), not the
  // owner's own interrupt.
  virtual bool interrupt_scoped() const noexcept { return false; }
  // take_wait_cause() marks the owner interrupting and returns the cause the
  // exception for its interrupted wait carries (`scoped`: interrupt_scoped()).
  virtual Cause take_wait_cause(bool scoped) = 0;
  // unwind_interrupted() ends an interrupted wait by the unwinder's second
  // phase alone, when that is exactly what the throw would do
  // (RuntimeOptions::interrupt_unwind; src/fiber/interrupt_unwind.cpp). It
  // returns only when it declined: the caller then throws. Not noexcept (the
  // unwind passes through it). `scoped`: the interrupt is the open stack
  // scope's (interrupt_scoped()), and the unwind ends in the scope's frame.
  virtual void unwind_interrupted(bool scoped) { (void)scoped; }
  // note_masked_wait_end() runs after a wait that could not be interrupted
  // (a fiber records a request that arrived meanwhile: FiberCore::kHeldOff).
  virtual void note_masked_wait_end() noexcept {}

 protected:
  // prepare_park() runs before the wait becomes claimable (a fiber enters
  // `parking`); cancel_park() undoes it when the owner claims its own wait.
  virtual void prepare_park() noexcept {}
  virtual void cancel_park() noexcept {}
  ~WaitOwner() = default;

 private:
  friend class WaitQueue;
  static constexpr std::uint64_t kStatusMask = 0x7f;
  static constexpr std::uint64_t kInterruptibleBit = 0x80;
  static constexpr int kEpochShift = 8;
  std::atomic<std::uint64_t> wait_word_{0};
};

// current_parker() is the running fiber, or this plain thread's parker.
// Not inlined (a fiber may migrate between two calls).
WaitOwner& current_parker() noexcept;

// throw_wait_interrupted() throws Interrupted for the current owner after a
// wait ended with WaitStatus::interrupted (it marks the fiber interrupting).
// Inlined into the wait's caller, so the throw adds no frames of its own
// (docs/performance.md: each frame costs both unwinder phases).
// The cause is built in the throw's operand, never in a named local: a local
// with a destructor alive at the throw gives this frame a landing pad, and
// each landing pad costs the second phase an _Unwind_Resume and a fresh walk.
[[noreturn, gnu::always_inline]] inline void throw_wait_interrupted() {
  WaitOwner& owner = current_parker();
  const bool scoped = owner.interrupt_scoped();
  owner.unwind_interrupted(scoped);  // returns when it declined
  if (scoped) throw ScopeInterrupted(owner.take_wait_cause(true));
  throw Interrupted(owner.take_wait_cause(false));
}

// Waiter is a node on the waiting context's stack, linked in one WaitQueue.
struct Waiter {
  ListHook<Waiter> hook;    // its links in the queue (queue lock)
  Waiter* chain = nullptr;  // a waker's list of claimed waiters, resumed after unlocking
  WaitOwner* owner = nullptr;
  std::uint64_t epoch = 0;
  void* payload = nullptr;  // primitive-specific hand-off slot
  bool linked = false;
};

// WaitOptions tunes one wait.
struct WaitOptions {
  std::optional<std::chrono::steady_clock::time_point> deadline;  // none: wait forever
  bool interruptible = true;  // false: an interrupt stays pending until a later yield point
  WaitSite site;              // shown by Runtime::dump() and the trace while parked
};

// WaitQueue is an intrusive FIFO of waiters guarded by lock().
class WaitQueue {
 public:
  WaitQueue() = default;
  WaitQueue(const WaitQueue&) = delete;
  WaitQueue& operator=(const WaitQueue&) = delete;

  // lock() is the queue's (and its primitive's) lock.
  SpinLock& lock() noexcept WEFT_RETURN_CAPABILITY(lock_) { return lock_; }
  // empty() is true when nobody waits (lock held).
  bool empty() const noexcept WEFT_REQUIRES(lock_) { return list_.empty(); }
  // front() is the oldest waiter, still linked (lock held).
  Waiter* front() const noexcept WEFT_REQUIRES(lock_) { return list_.front(); }

  // wait() parks `owner` (the calling fiber or thread) on this queue. `lk`
  // must hold lock(); it is released while parked and NOT re-acquired. On
  // `woken` the waker unlinked `w` and filled w.payload if the primitive
  // hands off data; on any other status `w` has been unlinked here and the
  // queue is untouched.
  WaitStatus wait(WaitOwner& owner, std::unique_lock<SpinLock>& lk, Waiter& w,
                  const WaitOptions& opts = {}) WEFT_RELEASE(lock_);
  // wait() without an owner parks current_parker().
  WaitStatus wait(std::unique_lock<SpinLock>& lk, Waiter& w, const WaitOptions& opts = {})
      WEFT_RELEASE(lock_) {
    return wait(current_parker(), lk, w, opts);
  }

  // claim_one() pops waiters in FIFO order until one is claimed as woken and
  // returns it (lock held), or nullptr. Fill its payload, release the lock,
  // then call resume(w). Waiters that lost to an interrupt are just dropped.
  Waiter* claim_one() noexcept WEFT_REQUIRES(lock_);
  // resume() continues a claimed waiter's owner; `w` is dead afterwards.
  static void resume(Waiter* w) noexcept { w->owner->unpark(); }

  // push_back() links w at the tail (lock held). wait() calls it.
  void push_back(Waiter& w) noexcept WEFT_REQUIRES(lock_);
  // unlink() removes w if linked (lock held).
  void unlink(Waiter& w) noexcept WEFT_REQUIRES(lock_);

 private:
  SpinLock lock_;
  IntrusiveList<Waiter, &Waiter::hook> list_ WEFT_GUARDED_BY(lock_);
};

}  // namespace weft::detail
