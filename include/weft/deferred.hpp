// Deferred<T>: a one-shot promise. One party completes it, once, with a value
// (succeed) or an exception (fail); any number of fibers and plain threads
// await() it. It is shared by reference: keep it on a stack that outlives its
// users, or in a std::shared_ptr.
//
// Memory ordering: everything the completer did before succeed()/fail()
// happens-before everything an awaiter does after await() returns or throws
// the failure, and after done() returns true or poll() returns an Exit.
//
// Interruption: await() is an interruptible yield point. It throws
// weft::Interrupted when an interrupt is pending on entry (even if the
// Deferred is already complete) or arrives while it is parked. An interrupted
// awaiter is removed from the Deferred and a later completion never touches
// it. succeed(), fail(), poll() and done() never wait and are not yield
// points. From a plain thread, await() blocks the thread (never interrupted).
//
// Misuse: a second completion throws std::logic_error ("weft::Deferred:
// completed twice") and keeps the first result: a promise that silently
// dropped the second value would hide a race between completers (when
// several complete on purpose, the first one winning, use try_succeed /
// try_fail). Destroying a Deferred while fibers await it wakes them with
// std::logic_error ("weft::Deferred destroyed while fibers await it") rather
// than leaving them parked forever.
//
// Lifetime: a Deferred may be destroyed as soon as its last user's await()
// has returned (or done() returned true), even if the succeed()/fail() that
// completed it has not returned yet: the destructor waits for that call to
// release the Deferred's lock, its last touch (as absl::Notification does).
// Channel, Mutex, Semaphore and Latch give the same guarantee: their
// destructor waits out a waker still inside the call that woke the destroyer.
//
// This header also holds detail::SyncQueue, the wait-queue wrapper shared by
// every sync primitive (Deferred, Channel, Mutex, Semaphore, Latch).
#pragma once

#include <weft/detail/spin_lock.hpp>
#include <weft/detail/wait_queue.hpp>
#include <weft/exit.hpp>

#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace weft {

namespace detail {

// WaitSlot is the start of every waiter's hand-off slot (Waiter::payload).
// Wakers fill the derived part; a dying primitive sets `destroyed` instead.
struct WaitSlot {
  bool destroyed = false;  // the primitive was destroyed; nothing was handed over
};

// SyncQueue is a sync primitive's WaitQueue plus the number of waits in
// flight, so that the primitive's destructor can wake its parked waiters with
// an error and then wait for interrupted ones to finish leaving the queue
// (they still take its lock once on their way out).
//
// Hand-off protocol: a waker claims a waiter under lock() (claim()), moves
// ownership (an item, a permit, the lock) into its slot, releases the lock,
// then resume()s it. A claimed waiter never touches the primitive again
// except what the primitive's contract allows; an interrupted one took nothing.
class SyncQueue {
 public:
  SyncQueue() = default;
  SyncQueue(const SyncQueue&) = delete;
  SyncQueue& operator=(const SyncQueue&) = delete;
  // ~SyncQueue() wakes every parked waiter with `destroyed` set, then waits
  // (yielding) until interrupted waiters have left the queue.
  ~SyncQueue();

  // lock() guards the queue and the primitive's own state.
  SpinLock& lock() noexcept WEFT_RETURN_CAPABILITY(queue_.lock()) { return queue_.lock(); }

  // park() waits with `slot` as the hand-off slot; `lk` holds lock() and is
  // released (not re-acquired). Returns once a waker claimed us and filled
  // the slot. Throws Interrupted if an interrupt ended the wait (nothing was
  // handed over), std::logic_error(destroyed_message) if the primitive died.
  void park(std::unique_lock<SpinLock>& lk, WaitSlot& slot, const char* what,
            const char* destroyed_message) WEFT_RELEASE(queue_.lock());

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
  template <class Fill>
  // Not analysed: clang 14 cannot follow `lk`, a guard passed in.
  std::size_t wake_all(std::unique_lock<SpinLock>& lk, Fill&& fill) noexcept
      WEFT_RELEASE(queue_.lock()) WEFT_NO_THREAD_SAFETY_ANALYSIS {
    Waiter* claimed = nullptr;
    std::size_t n = 0;
    while (Waiter* w = claim()) {
      fill(w);
      w->next = claimed;  // unlinked: the field is free for chaining
      claimed = w;
      ++n;
    }
    lk.unlock();
    resume_chain(claimed);
    return n;
  }
  // resume_chain() resumes claimed waiters chained through Waiter::next.
  static void resume_chain(Waiter* chain) noexcept;

  // waiters() is how many waits are in flight: parked, or interrupted and
  // still leaving. A snapshot, for diagnostics and tests.
  std::size_t waiters() const noexcept { return in_flight_.load(std::memory_order_acquire); }

 private:
  WaitQueue queue_;
  // Waits that may still touch this queue. +1 by the waiter before it parks,
  // -1 by whoever claims it, or by the waiter itself after an interrupted
  // wait has unlinked it. The destructor waits for 0.
  std::atomic<std::size_t> in_flight_{0};
};

// throw_deferred_twice() throws the "completed twice" logic_error.
[[noreturn]] void throw_deferred_twice();
// check_deferred_failure() rejects a null exception_ptr given to `what`
// (fail or try_fail) with std::invalid_argument.
void check_deferred_failure(const std::exception_ptr& error, const char* what);
// kDeferredDestroyed is what awaiters of a destroyed Deferred throw.
inline constexpr const char* kDeferredDestroyed = "weft::Deferred destroyed while fibers await it";

// DeferredBase is the type-independent part of Deferred<T>: the completion
// flag, the failure and the awaiters.
class DeferredBase {
 public:
  // done() is true once completed (acquire: the result is visible).
  bool done() const noexcept { return done_.load(std::memory_order_acquire); }
  // waiters() is how many fibers/threads are inside await() (diagnostics, tests).
  std::size_t waiters() const noexcept { return queue_.waiters(); }

 protected:
  DeferredBase() = default;
  ~DeferredBase() = default;
  // wait_done() is await() without the result: returns once done.
  void wait_done();
  // complete() runs store() under the lock if not yet done, publishes and
  // wakes the awaiters; false (nothing stored) if already done.
  template <class Store>
  bool complete(Store&& store) {
    std::unique_lock lk(queue_.lock());
    if (done_.load(std::memory_order_relaxed)) return false;
    store();
    // release: the stored result happens-before a done() that reads true.
    done_.store(true, std::memory_order_release);
    queue_.wake_all(lk, [](Waiter*) {});
    return true;
  }
  // rethrow_if_failed() rethrows the failure (only after done()).
  void rethrow_if_failed() const {
    if (error_) std::rethrow_exception(error_);
  }
  // failure_exit() is the failed Exit (only after done() and when failed).
  template <class T>
  std::optional<Exit<T>> failure_exit() const {
    return Exit<T>::failure(Cause::fail(error_));
  }

  std::exception_ptr error_;  // written once, before done_ is set
  std::atomic<bool> done_{false};
  mutable SyncQueue queue_;
};

}  // namespace detail

// Deferred<T> is a one-shot promise of a T (see the top of this header).
template <class T>
class Deferred : private detail::DeferredBase {
 public:
  // Deferred() is an incomplete promise.
  Deferred() = default;
  Deferred(const Deferred&) = delete;
  Deferred& operator=(const Deferred&) = delete;
  // ~Deferred() wakes fibers still awaiting with std::logic_error.
  ~Deferred() = default;

  // succeed() completes with `value` and wakes every awaiter; a second
  // completion throws std::logic_error.
  void succeed(T value) {
    if (!try_succeed(std::move(value))) detail::throw_deferred_twice();
  }
  // fail() completes with `error` (non-null) and wakes every awaiter; a
  // second completion throws std::logic_error.
  void fail(std::exception_ptr error) {
    detail::check_deferred_failure(error, "fail");
    if (!complete([&] { error_ = std::move(error); })) detail::throw_deferred_twice();
  }
  // try_succeed() is succeed() that returns false if already completed.
  bool try_succeed(T value) {
    return complete([&] { value_.emplace(std::move(value)); });
  }
  // try_fail() is fail() that returns false if already completed.
  bool try_fail(std::exception_ptr error) {
    detail::check_deferred_failure(error, "try_fail");
    return complete([&] { error_ = std::move(error); });
  }

  // await() waits for completion; returns the value or rethrows the
  // failure. The reference lives as long as this Deferred. A yield point.
  const T& await() {
    wait_done();
    rethrow_if_failed();
    return *value_;
  }
  // poll() is the result as an Exit if completed, without waiting (copies the value).
  [[nodiscard]] std::optional<Exit<T>> poll() const {
    if (!done()) return std::nullopt;
    if (error_) return failure_exit<T>();
    return Exit<T>::success(*value_);
  }
  // done() is true once completed.
  using DeferredBase::done;
  // waiters() is how many fibers/threads are inside await() (diagnostics, tests).
  using DeferredBase::waiters;

 private:
  std::optional<T> value_;  // written once, before done_ is set
};

// Deferred<void> is a one-shot completion signal that may carry a failure.
template <>
class Deferred<void> : private detail::DeferredBase {
 public:
  // Deferred() is an incomplete promise.
  Deferred() = default;
  Deferred(const Deferred&) = delete;
  Deferred& operator=(const Deferred&) = delete;
  // ~Deferred() wakes fibers still awaiting with std::logic_error.
  ~Deferred() = default;

  // succeed() completes successfully and wakes every awaiter; a second
  // completion throws std::logic_error.
  void succeed() {
    if (!try_succeed()) detail::throw_deferred_twice();
  }
  // fail() completes with `error` (non-null) and wakes every awaiter; a
  // second completion throws std::logic_error.
  void fail(std::exception_ptr error) {
    detail::check_deferred_failure(error, "fail");
    if (!complete([&] { error_ = std::move(error); })) detail::throw_deferred_twice();
  }
  // try_succeed() is succeed() that returns false if already completed.
  bool try_succeed() {
    return complete([] {});
  }
  // try_fail() is fail() that returns false if already completed.
  bool try_fail(std::exception_ptr error) {
    detail::check_deferred_failure(error, "try_fail");
    return complete([&] { error_ = std::move(error); });
  }

  // await() waits for completion; rethrows the failure. A yield point.
  void await() {
    wait_done();
    rethrow_if_failed();
  }
  // poll() is the result as an Exit if completed, without waiting.
  [[nodiscard]] std::optional<Exit<void>> poll() const {
    if (!done()) return std::nullopt;
    if (error_) return failure_exit<void>();
    return Exit<void>::success();
  }
  // done() is true once completed.
  using DeferredBase::done;
  // waiters() is how many fibers/threads are inside await() (diagnostics, tests).
  using DeferredBase::waiters;
};

}  // namespace weft
