// fence.hpp: the scheduler's seq_cst fence, and whether this is a TSan build.
//
// A store-load (Dekker) pair between a thread that publishes work and one
// that announces it is going to sleep needs a full barrier on each side. On
// a shared atomic a read-modify-write would do, but it takes the cache line
// in exclusive state: every push on every worker would move that line
// between cores. A fence touches no shared line (g++ emits a locked no-op
// on the thread's own stack). Measured: notify_work's seq_cst `fetch_add(0)`
// on the sleeper count cost 30 % of skynet's time at 2 workers on a machine
// whose cores are 230 ns apart (docs/performance.md, "Round 7").
//
// ThreadSanitizer ignores standalone atomic_thread_fence, so TSan builds
// (WEFT_TSAN, __SANITIZE_THREAD__ or __has_feature(thread_sanitizer)) keep
// the per-operation orders or read-modify-writes that TSan models; each
// caller says what it uses instead (see kTsan).
#pragma once

#include <atomic>

#if defined(WEFT_TSAN) || defined(__SANITIZE_THREAD__)
#define WEFT_DETAIL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT_DETAIL_TSAN 1
#endif
#endif

namespace weft::detail {

#ifdef WEFT_DETAIL_TSAN
inline constexpr bool kTsan = true;
#else
inline constexpr bool kTsan = false;
#endif

// fence_seq_cst() is a seq_cst fence (a no-op under TSan, see above). On
// x86-64 with clang it is spelled as the locked no-op RMW on the stack that
// g++ itself emits for atomic_thread_fence(seq_cst) (a full barrier; the
// "memory" clobber makes it a compiler barrier for every access, atomics
// included). Clang 14 emits mfence instead, which on the AMD EPYC we run on
// made ChaseLevDeque's push+pop 4.5x slower (24.7 ns vs 5.5 ns).
inline void fence_seq_cst() noexcept {
  if constexpr (!kTsan) {
#if defined(__clang__) && defined(__x86_64__)
    asm volatile("lock orq $0, (%%rsp)" ::: "memory", "cc");
#else
    std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
  }
}

// store_load_barrier(stand_in) is the barrier between a plain store and a
// later load of another location: fence_seq_cst(), or under TSan a seq_cst
// no-op read-modify-write of `stand_in`, which TSan does model (the caller
// picks an atomic whose other side also writes it, or whose order TSan does
// not need to see).
template <class T>
inline void store_load_barrier(std::atomic<T>& stand_in) noexcept {
  if constexpr (kTsan) {
    stand_in.fetch_add(0, std::memory_order_seq_cst);
  } else {
    fence_seq_cst();
  }
}

}  // namespace weft::detail
