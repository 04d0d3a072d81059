// Latch: a single-use countdown (like std::latch) for fibers and plain
// threads. wait() returns once count_down() calls have brought the count
// to zero; it never goes back up.
//
// Memory ordering: everything a fiber did before its count_down() (or
// arrive_and_wait()) happens-before everything any fiber does after its
// wait() or arrive_and_wait() returns, or after try_wait() returns true.
//
// Interruption: wait() and arrive_and_wait() are interruptible yield points:
// they throw weft::Interrupted when an interrupt is pending on entry or
// arrives while they wait. An interrupted waiter is removed and the count is
// untouched; arrive_and_wait() checks for an interrupt before arriving, and
// an interrupt that ends its wait leaves the arrival counted (an arrival
// cannot be undone). count_down() and try_wait() never wait. From a plain
// thread, wait() blocks the thread.
//
// Timed waits: wait_until(deadline) / wait_for(d) return true once the count
// is zero, false when the deadline passed first (the count is untouched).
// Interruptible yield points exactly like wait(); a deadline already passed
// does not park (it returns try_wait()).
//
// Misuse: a negative initial count, a count_down() below zero, or a
// count_down() with a negative n throws std::invalid_argument (the count is
// left unchanged).
//
// Lifetime: a Latch may be destroyed as soon as wait() returned (or
// try_wait() returned true) for its last user, even if the count_down() that
// released it has not returned yet (the destructor waits for it to release
// the internal lock). Destroying a Latch while fibers wait on it wakes them
// with std::logic_error.
#pragma once

#include <weft/deadline.hpp>
#include <weft/detail/sync_queue.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <weft/source_location.hpp>

namespace weft {

// Latch is a single-use countdown (see the top of this header).
class Latch {
 public:
  // Latch() starts at `count` (>= 0, else std::invalid_argument).
  explicit Latch(std::ptrdiff_t count);
  Latch(const Latch&) = delete;
  Latch& operator=(const Latch&) = delete;
  // ~Latch() wakes fibers still waiting with std::logic_error.
  ~Latch() = default;

  // count_down() decrements the count by n; at zero it releases every waiter.
  void count_down(std::ptrdiff_t n = 1);
  // wait() returns once the count is zero. A yield point.
  void wait(weft::source_location where = weft::source_location::current());
  // wait_until() waits until the count is zero or `deadline` passes; true
  // when the count is zero. A yield point.
  [[nodiscard("false means the deadline passed first")]] bool wait_until(
      Deadline deadline, weft::source_location where = weft::source_location::current());
  // wait_for() is wait_until(this_fiber::now() + d). A yield point.
  [[nodiscard("false means the deadline passed first")]] bool wait_for(
      std::chrono::nanoseconds d, weft::source_location where = weft::source_location::current()) {
    return wait_until(detail::deadline_after(d), where);
  }
  // try_wait() is true when the count is zero. Never waits.
  [[nodiscard]] bool try_wait() const noexcept {
    return count_.load(std::memory_order_acquire) == 0;
  }
  // arrive_and_wait() is count_down(n) then wait(). A yield point.
  void arrive_and_wait(std::ptrdiff_t n = 1,
                       weft::source_location where = weft::source_location::current());
  // count() is the current count (a snapshot).
  std::ptrdiff_t count() const noexcept { return count_.load(std::memory_order_acquire); }
  // waiters() is how many fibers/threads wait (diagnostics, tests).
  std::size_t waiters() const noexcept { return queue_.waiters(); }

 private:
  // arrive() is count_down(n); `what` names the call in the misuse error.
  void arrive(std::ptrdiff_t n, const char* what);

  // Written under queue_.lock() (release), read without it (acquire) by try_wait().
  std::atomic<std::ptrdiff_t> count_;
  mutable detail::SyncQueue queue_;  // last: destroyed first, waking waiters
};

}  // namespace weft
