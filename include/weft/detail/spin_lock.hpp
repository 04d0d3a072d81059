// SpinLock: a test-and-test-and-set lock for short critical sections (a few
// pointer updates). Never held across a context switch or a syscall.
#pragma once

#include <atomic>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace weft::detail {

// cpu_relax() tells the core we are spinning (PAUSE on x86).
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// SpinLock is a Lockable TTAS lock: acquire on lock, release on unlock.
class SpinLock {
 public:
  // lock() spins until the lock is ours.
  void lock() noexcept {
    for (;;) {
      // acquire: the critical section sees everything the last holder wrote.
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
      while (locked_.load(std::memory_order_relaxed)) cpu_relax();
    }
  }
  // try_lock() takes the lock if it is free.
  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }
  // unlock() releases: our writes happen-before the next holder's reads.
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

}  // namespace weft::detail
