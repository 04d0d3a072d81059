// SpinLock: a test-and-test-and-set lock for short critical sections (a few
// pointer updates). Never held across a context switch or a syscall.
//
// It is a clang thread-safety capability (detail/thread_annotations.hpp):
// fields say WEFT_GUARDED_BY(the lock) and clang checks every access. The
// standard guards are not annotated in libstdc++, so this header specializes
// std::lock_guard and std::unique_lock for SpinLock with the same interface
// plus the annotations ([namespace.std]: a specialization for a
// program-defined type); `std::lock_guard lk(spin)` is checked as written.
// Clang 14 cannot follow a std::unique_lock passed by reference into a
// function that unlocks it: such functions say WEFT_NO_THREAD_SAFETY_ANALYSIS.
#pragma once

#include <weft/detail/thread_annotations.hpp>

#include <atomic>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

namespace weft::detail {

// cpu_relax() tells the core we are spinning (PAUSE on x86). The builtin,
// not _mm_pause(): <immintrin.h> cost every file including weft ~0.7 s to parse.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// SpinLock is a Lockable TTAS lock: acquire on lock, release on unlock. The
// one spin lock of weft (wait queues, fibers, timer heaps). A contended
// locker spins with a pause, then yields its thread, so an oversubscribed
// machine (more runnable threads than cores) still lets the holder run.
class WEFT_CAPABILITY("spin lock") SpinLock {
 public:
  // kSpinsBeforeYield: pause-spins before a contended locker yields the CPU.
  static constexpr unsigned kSpinsBeforeYield = 128;

  // lock() spins until the lock is ours.
  void lock() noexcept WEFT_ACQUIRE() {
    // acquire: the critical section sees everything the last holder wrote.
    if (!locked_.exchange(true, std::memory_order_acquire)) [[likely]]
      return;
    lock_contended();
  }
  // try_lock() takes the lock if it is free.
  bool try_lock() noexcept WEFT_TRY_ACQUIRE(true) {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }
  // unlock() releases: our writes happen-before the next holder's reads.
  void unlock() noexcept WEFT_RELEASE() { locked_.store(false, std::memory_order_release); }

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

namespace std {

// lock_guard<SpinLock> is std::lock_guard, annotated as a scoped capability.
template <>
class WEFT_SCOPED_CAPABILITY lock_guard<weft::detail::SpinLock> {
 public:
  using mutex_type = weft::detail::SpinLock;
  explicit lock_guard(mutex_type& m) noexcept WEFT_ACQUIRE(m) : m_(m) { m_.lock(); }
  lock_guard(mutex_type& m, adopt_lock_t) noexcept WEFT_REQUIRES(m) : m_(m) {}
  ~lock_guard() WEFT_RELEASE() { m_.unlock(); }
  lock_guard(const lock_guard&) = delete;
  lock_guard& operator=(const lock_guard&) = delete;

 private:
  mutex_type& m_;
};

// unique_lock<SpinLock> is std::unique_lock (without the timed members, which
// SpinLock does not have), annotated as a relockable scoped capability.
template <>
class WEFT_SCOPED_CAPABILITY unique_lock<weft::detail::SpinLock> {
 public:
  using mutex_type = weft::detail::SpinLock;
  unique_lock() noexcept = default;
  explicit unique_lock(mutex_type& m) noexcept WEFT_ACQUIRE(m) : m_(&m), owns_(true) { m.lock(); }
  unique_lock(mutex_type& m, defer_lock_t) noexcept WEFT_EXCLUDES(m) : m_(&m) {}
  unique_lock(mutex_type& m, try_to_lock_t) noexcept WEFT_TRY_ACQUIRE(true, m)
      : m_(&m), owns_(m.try_lock()) {}
  unique_lock(mutex_type& m, adopt_lock_t) noexcept WEFT_REQUIRES(m) : m_(&m), owns_(true) {}
  ~unique_lock() WEFT_RELEASE() {
    if (owns_) m_->unlock();
  }
  unique_lock(const unique_lock&) = delete;
  unique_lock& operator=(const unique_lock&) = delete;
  unique_lock(unique_lock&& o) noexcept
      : m_(std::exchange(o.m_, nullptr)), owns_(std::exchange(o.owns_, false)) {}
  // Not analysed: the analysis cannot tell which lock *this held before.
  unique_lock& operator=(unique_lock&& o) noexcept WEFT_NO_THREAD_SAFETY_ANALYSIS {
    if (owns_) m_->unlock();
    m_ = std::exchange(o.m_, nullptr);
    owns_ = std::exchange(o.owns_, false);
    return *this;
  }

  void lock() WEFT_ACQUIRE() {
    check(false);
    m_->lock();
    owns_ = true;
  }
  bool try_lock() WEFT_TRY_ACQUIRE(true) {
    check(false);
    owns_ = m_->try_lock();
    return owns_;
  }
  void unlock() WEFT_RELEASE() {
    check(true);
    m_->unlock();
    owns_ = false;
  }
  void swap(unique_lock& o) noexcept {
    std::swap(m_, o.m_);
    std::swap(owns_, o.owns_);
  }
  mutex_type* release() noexcept {
    owns_ = false;
    return std::exchange(m_, nullptr);
  }
  bool owns_lock() const noexcept { return owns_; }
  explicit operator bool() const noexcept { return owns_; }
  mutex_type* mutex() const noexcept { return m_; }

 private:
  // check() throws as std::unique_lock does when there is no mutex, or when
  // the lock is (not) owned where it must not (must) be.
  void check(bool must_own) const {
    if (m_ == nullptr) throw system_error(make_error_code(errc::operation_not_permitted));
    if (owns_ != must_own)
      throw system_error(make_error_code(must_own ? errc::operation_not_permitted
                                                  : errc::resource_deadlock_would_occur));
  }
  mutex_type* m_ = nullptr;
  bool owns_ = false;
};

}  // namespace std
