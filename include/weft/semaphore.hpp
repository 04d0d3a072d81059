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

#include <weft/deferred.hpp>

#include <cstddef>

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
  void acquire();
  // try_acquire() takes one permit if one is available and nobody waits. Never waits.
  [[nodiscard]] bool try_acquire();
  // release() returns `n` permits, handing each to the oldest waiter first;
  // std::invalid_argument (nothing released) if the count would overflow.
  void release(std::size_t n = 1);
  // available() is how many permits are free (a snapshot).
  std::size_t available() const;
  // waiters() is how many fibers/threads wait for a permit (diagnostics, tests).
  std::size_t waiters() const noexcept { return queue_.waiters(); }

 private:
  std::size_t permits_ WEFT_GUARDED_BY(queue_.lock());  // 0 while anyone waits
  mutable detail::SyncQueue queue_;  // last: destroyed first, waking waiters
};

}  // namespace weft
