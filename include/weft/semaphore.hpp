// Semaphore: a counting semaphore for fibers and plain threads.
//
// Memory ordering: everything a fiber did before release() happens-before
// everything the fiber that receives that permit does after its acquire()
// or successful try_acquire() returns.
//
// Fairness: permits go first come, first served. release() hands a permit
// directly to the oldest waiter (it is never counted as available in
// between), so a newcomer never overtakes a waiter; try_acquire() fails
// while anyone waits.
//
// Interruption: acquire() is an interruptible yield point: it throws
// weft::Interrupted when an interrupt is pending on entry or arrives while it
// waits, and an interrupted waiter takes no permit. Once acquire() returns,
// the caller holds a permit even if an interrupt arrived meanwhile. Permits
// held by a guard (OnExit, acquire_release) are released while an
// interrupted fiber unwinds. release(), try_acquire() and available() never
// wait. From a plain thread, acquire() blocks the thread.
//
// Timed waits: try_acquire_until(deadline) / try_acquire_for(d) (as
// std::counting_semaphore) return false when the deadline passed before a
// permit was handed over: the caller holds no permit, and a release() that
// meets the timed-out waiter hands its permit to the next waiter (or counts
// it) instead. Interruptible yield points exactly like acquire(); a deadline
// already passed does not park.
//
// SemaphorePermit is the RAII guard of one permit (as seastar's
// semaphore_units): its destructor releases the permit it owns, so a
// finalizer never has to remember.
//
// Permits are not owned: any fiber or thread may release().
//
// Misuse: a release() that would overflow the count of available permits
// (std::size_t) throws std::invalid_argument and releases nothing.
//
// Lifetime: a Semaphore may be destroyed right after the last acquire()
// returned, even if the release() that handed the permit over has not
// returned yet (the destructor waits for it to release the internal lock).
// Destroying a Semaphore while fibers wait on it wakes them with
// std::logic_error.
#pragma once

#include <weft/deadline.hpp>
#include <weft/detail/sync_queue.hpp>

#include <chrono>
#include <cstddef>
#include <mutex>
#include <weft/source_location.hpp>
#include <utility>

namespace weft {

// Semaphore counts permits; acquire() waits for one (see the top of this header).
class Semaphore {
 public:
  // Semaphore() starts with `permits` available.
  explicit Semaphore(std::size_t permits) : permits_(permits) {}
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;
  // ~Semaphore() wakes fibers still waiting with std::logic_error.
  ~Semaphore() = default;

  // acquire() takes one permit, waiting while none is available. A yield point.
  void acquire(weft::source_location where = weft::source_location::current());
  // try_acquire() takes one permit if one is available and nobody waits. Never waits.
  [[nodiscard]] bool try_acquire();
  // try_acquire_until() takes one permit, waiting while none is available
  // until `deadline`; false (no permit taken) when the deadline passed
  // first. A yield point.
  [[nodiscard("false means no permit was taken")]] bool try_acquire_until(
      Deadline deadline, weft::source_location where = weft::source_location::current());
  // try_acquire_for() is try_acquire_until(this_fiber::now() + d). A yield point.
  [[nodiscard("false means no permit was taken")]] bool try_acquire_for(
      std::chrono::nanoseconds d, weft::source_location where = weft::source_location::current()) {
    return try_acquire_until(detail::deadline_after(d), where);
  }
  // release() returns `n` permits, handing each to the oldest waiter first;
  // std::invalid_argument (nothing released) if the count would overflow.
  void release(std::size_t n = 1);
  // available() is how many permits are free (a snapshot).
  std::size_t available() const;
  // waiters() is how many fibers/threads wait for a permit (diagnostics, tests).
  std::size_t waiters() const noexcept { return queue_.waiters(); }

 private:
  std::size_t permits_ WEFT_GUARDED_BY(queue_.lock());  // 0 while anyone waits
  mutable detail::SyncQueue queue_;                     // last: destroyed first, waking waiters
};

// SemaphorePermit owns at most one permit of a Semaphore and releases it when
// destroyed (or at release()). Move-only; the Semaphore must outlive it.
class SemaphorePermit {
 public:
  // SemaphorePermit(s) acquires a permit (s.acquire(): a yield point; on
  // Interrupted no permit is taken and nothing is constructed).
  explicit SemaphorePermit(Semaphore& s) : semaphore_(&s) {
    s.acquire();
    owns_ = true;
  }
  // SemaphorePermit(s, std::adopt_lock) takes over a permit the caller holds.
  SemaphorePermit(Semaphore& s, std::adopt_lock_t) noexcept : semaphore_(&s), owns_(true) {}
  // SemaphorePermit(s, std::try_to_lock) takes a permit if s.try_acquire()
  // does; see owns(). Never waits.
  SemaphorePermit(Semaphore& s, std::try_to_lock_t) : semaphore_(&s), owns_(s.try_acquire()) {}
  SemaphorePermit(SemaphorePermit&& other) noexcept
      : semaphore_(other.semaphore_), owns_(std::exchange(other.owns_, false)) {}
  // operator=() releases the permit this guard owns, then takes other's.
  SemaphorePermit& operator=(SemaphorePermit&& other) noexcept {
    if (this != &other) {
      release();
      semaphore_ = other.semaphore_;
      owns_ = std::exchange(other.owns_, false);
    }
    return *this;
  }
  SemaphorePermit(const SemaphorePermit&) = delete;
  SemaphorePermit& operator=(const SemaphorePermit&) = delete;
  // ~SemaphorePermit() releases the permit if this guard owns one.
  ~SemaphorePermit() { release(); }

  // owns() is true while this guard holds a permit.
  bool owns() const noexcept { return owns_; }
  // operator bool() is owns().
  explicit operator bool() const noexcept { return owns_; }
  // release() returns the permit early (no-op if none is owned).
  void release() noexcept {
    // One permit never overflows the count: this guard's permit was taken
    // from it, so the count is below its maximum.
    if (std::exchange(owns_, false)) semaphore_->release();
  }

 private:
  Semaphore* semaphore_;
  bool owns_ = false;
};

}  // namespace weft
