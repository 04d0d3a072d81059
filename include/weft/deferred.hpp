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
// Timed waits: await_until(deadline) / await_for(d) give up at the deadline:
// Deferred<T> returns std::optional<T>, a copy of the value (std::nullopt
// when the deadline passed first; DESIGN.md §1), Deferred<void> returns bool. They rethrow a
// failure and are interruptible yield points exactly like await(); a deadline already passed does
// not park (it still returns the result when complete).
#pragma once

#include <weft/deadline.hpp>
#include <weft/detail/spin_lock.hpp>
#include <weft/detail/sync_queue.hpp>
#include <weft/exit.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <mutex>
#include <optional>
#include <weft/source_location.hpp>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace weft {

namespace detail {

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
  // wait_done_until() is await_until() without the result: true once done,
  // false when `deadline` passed first (Deadline::max(): no deadline).
  bool wait_done_until(Deadline deadline, weft::source_location where);
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
  const T& await(weft::source_location where = weft::source_location::current()) {
    (void)wait_done_until(Deadline::max(), where);
    rethrow_if_failed();
    return *value_;
  }
  // await_until() is await() that gives up at `deadline`: a copy of the
  // value, std::nullopt when the deadline passed first; rethrows the
  // failure. A yield point. (After a true done(), await() gives a reference.)
  [[nodiscard("nullopt means the deadline passed")]] std::optional<T> await_until(
      Deadline deadline, weft::source_location where = weft::source_location::current()) {
    if (!wait_done_until(deadline, where)) return std::nullopt;
    rethrow_if_failed();
    return *value_;
  }
  // await_for() is await_until(this_fiber::now() + d). A yield point.
  [[nodiscard("nullopt means the deadline passed")]] std::optional<T> await_for(
      std::chrono::nanoseconds d, weft::source_location where = weft::source_location::current()) {
    return await_until(detail::deadline_after(d), where);
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
  void await(weft::source_location where = weft::source_location::current()) {
    (void)wait_done_until(Deadline::max(), where);
    rethrow_if_failed();
  }
  // await_until() is await() that gives up at `deadline`: true once
  // completed, false when the deadline passed first; rethrows the failure.
  // A yield point.
  [[nodiscard("false means the deadline passed")]] bool await_until(
      Deadline deadline, weft::source_location where = weft::source_location::current()) {
    if (!wait_done_until(deadline, where)) return false;
    rethrow_if_failed();
    return true;
  }
  // await_for() is await_until(this_fiber::now() + d). A yield point.
  [[nodiscard("false means the deadline passed")]] bool await_for(
      std::chrono::nanoseconds d, weft::source_location where = weft::source_location::current()) {
    return await_until(detail::deadline_after(d), where);
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
