// SpinLock: a test-and-test-and-set lock for short critical sections (a few
// pointer updates). Never held across a context switch or a syscall.
#pragma once

#include <atomic>
#include <thread>

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

// SpinLock is a Lockable TTAS lock: acquire on lock, release on unlock. The
// one spin lock of weft (wait queues, fibers, timer heaps). A contended
// locker spins with a pause, then yields its thread, so an oversubscribed
// machine (more runnable threads than cores) still lets the holder run.
class SpinLock {
 public:
  // kSpinsBeforeYield: pause-spins before a contended locker yields the CPU.
  static constexpr unsigned kSpinsBeforeYield = 128;

  // lock() spins until the lock is ours.
  void lock() noexcept {
    // acquire: the critical section sees everything the last holder wrote.
    if (!locked_.exchange(true, std::memory_order_acquire)) [[likely]]
      return;
    lock_contended();
  }
  // try_lock() takes the lock if it is free.
  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }
  // unlock() releases: our writes happen-before the next holder's reads.
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  [[gnu::noinline]] void lock_contended() noexcept {
    unsigned spins = 0;
    for (;;) {
      // relaxed: only watches for the holder to leave (the "test" of TTAS
      // keeps the line shared instead of bouncing it); the exchange acquires.
      while (locked_.load(std::memory_order_relaxed)) {
        if (spins < kSpinsBeforeYield) {
          ++spins;
          cpu_relax();
        } else {
          std::this_thread::yield();
        }
      }
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
    }
  }
  std::atomic<bool> locked_{false};
};

}  // namespace weft::detail
