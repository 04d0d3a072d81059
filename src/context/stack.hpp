// Fiber stacks: a per-runtime pool of mmap'd stacks, each protected either by
// a PROT_NONE guard page or, once the guard budget is spent, by a canary.
//
// Why two kinds: a guarded stack costs two kernel mappings (the guard page and
// the stack), and Linux caps a process at vm.max_map_count (65,530 on a stock
// kernel). So the first `guard_budget` stacks get guard pages (an overflow
// faults and is reported by the handler in overflow.hpp); the rest are carved
// from slabs of stacks that share one mapping, each with a 64-byte canary
// zone just below its base that the scheduler checks on every switch-out
// (stack_canary_intact). A million 256 KiB fibers then take about a thousand
// slab mappings plus the guarded ones, and 256 GiB of MAP_NORESERVE virtual
// memory, which the kernel accepts. (Adjacent slabs even merge into one
// mapping: the million test ends at ~30.8k mappings, almost all of them the
// 15,358 guarded stacks.)
//
// Slab sizes grow geometrically: the first holds `slab_stacks` stacks, each
// next one twice as many, up to `slab_stacks_max` (the growth of a vector,
// or of Go's heap arenas). A slab costs one resident page beyond its stacks'
// own (the canary of its lowest stack, below), so with slabs of 64 that page
// was 64 bytes per fiber, 1.2 % of an idle fiber's 4.5 KB; at 1024 it is 4.
// Small pools still reserve little address space.
//
// Geometry (every stack, both kinds; P = page size, span = round_up(request +
// 64, P)): the usable range is [base, base + span - 64), base is page aligned,
// and the page just below base is either the guard page or the page holding
// the canary zone [base - 64, base). In a slab that page is the neighbour's
// top page, which a running fiber touches anyway, so a canary stack with a
// shallow fiber costs one resident page, not two.
//
// Memory given back: default stacks are reused, never unmapped while the pool
// lives. Up to `resident_free` free stacks in the shared list keep their
// pages; beyond that, a released stack is madvise(MADV_DONTNEED)'d -- all but
// its top page, which the next fiber touches at once and which holds the
// neighbour's canary -- but only if its fiber went below that top page, as
// told by a sentinel word at the bottom of the page (no system call). Measured
// on the 2-vCPU VM: an madvise costs ~1.5 us even on untouched pages, so
// madvising every release would add ~1.5 s to releasing a million shallow
// stacks for no RSS gain; with the sentinel that release takes ~0.2 s. A fiber
// that skips over the sentinel with a large uninitialised buffer is missed
// (its pages stay resident, nothing breaks).
//
// Threading: acquire(w)/release(w) with w < workers use worker w's cache
// without locks or atomic read-modify-writes: only one thread at a time (the
// owner of worker w) may call them with that w. Any other worker value (use
// kNoWorker) goes through the shared, mutex-protected list and is safe from
// any thread. A stack may be released on a different worker than the one that
// acquired it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "context/overflow.hpp"

namespace weft::detail {

// Stack: one fiber stack handed out by a StackPool.
struct Stack {
  void* base = nullptr;  // lowest usable address (just above the guard page or canary)
  std::size_t size = 0;  // usable bytes
  bool guarded = false;  // true: a PROT_NONE guard page lies just below base
  void* top() const noexcept { return static_cast<char*>(base) + size; }
  explicit operator bool() const noexcept { return base != nullptr; }
};

// kStackCanaryZone: bytes just below an unguarded stack's base that hold the
// canary pattern.
inline constexpr std::size_t kStackCanaryZone = 64;

// StackPoolOptions: how a StackPool sizes, caches and protects its stacks.
struct StackPoolOptions {
  std::size_t stack_size = 256 * 1024;  // default usable size (at least this; see geometry)
  unsigned workers = 1;                 // number of per-worker caches
  std::size_t cache_per_worker = 64;    // stacks kept in each worker cache
  std::size_t guard_budget = 0;         // max guarded stacks mapped at once; 0 = auto:
                                        // (vm.max_map_count - 4096) / 4 (/ 8 under TSan),
                                        // read at construction, per pool (two runtimes in
                                        // one process each get that much)
  // Additions beyond the original interface:
  bool guard_pages = true;             // false: every stack is a canary stack
  std::size_t slab_stacks = 64;        // canary stacks in the first slab mapping
  std::size_t slab_stacks_max = 1024;  // each next slab doubles, up to this many
  std::size_t resident_free = 1024;    // free stacks in the shared list that keep their
                                       // pages; beyond this, a released stack whose
                                       // fiber went below its top page gets
                                       // madvise(MADV_DONTNEED) on all but that page
};

// StackPool: the stacks of one Runtime. Stacks of the default size are reused
// and only unmapped when the pool dies; other sizes are unmapped on release.
class StackPool {
 public:
  static constexpr std::size_t kMinStackSize = 16 * 1024;  // smallest stack_size accepted
  static constexpr std::size_t kMaxStackSize = std::size_t{1} << 30;  // largest (1 GiB)
  static constexpr unsigned kNoWorker = ~0u;  // acquire/release through the shared list

  // StackPool() computes the geometry and the guard budget; maps nothing yet.
  // Throws std::invalid_argument for stack_size < kMinStackSize or workers == 0.
  explicit StackPool(StackPoolOptions options);
  // ~StackPool() unmaps every stack; all must have been released (asserted).
  ~StackPool();
  StackPool(const StackPool&) = delete;
  StackPool& operator=(const StackPool&) = delete;

  // acquire() returns a stack of at least `size` usable bytes (0: the default
  // size). With worker < workers and a warm cache it makes no system call.
  // Throws std::bad_alloc when the kernel refuses the memory or mappings.
  [[nodiscard("a stack leaks unless released")]] Stack acquire(unsigned worker,
                                                               std::size_t size = 0);
  // release() gives a stack back (to worker's cache; overflow goes to the
  // shared list; non-default sizes are unmapped).
  void release(unsigned worker, Stack s);

  // in_use() counts stacks acquired and not yet released (exact when no
  // acquire/release runs concurrently) -- for leak checks.
  std::size_t in_use() const noexcept;
  // guarded_in_use() counts the guarded ones among in_use().
  std::size_t guarded_in_use() const noexcept;

  // default_size() is the usable size of a default stack (>= stack_size).
  std::size_t default_size() const noexcept { return default_usable_; }
  // guard_budget() is the resolved budget of guarded stacks (auto or given).
  std::size_t guard_budget() const noexcept { return guard_budget_; }
  // guarded_mapped() counts guarded stacks currently mapped (in use or free).
  std::size_t guarded_mapped() const noexcept {
    return guarded_mapped_.load(std::memory_order_relaxed);
  }

 private:
  // A worker's private cache; on its own cache line, written only by its owner.
  struct alignas(64) WorkerCache {
    Stack* slots = nullptr;  // capacity cache_per_worker, LIFO
    std::size_t count = 0;
    // Owner-written counters (load + store, no RMW); readers sum all of them.
    std::atomic<std::int64_t> in_use{0};
    std::atomic<std::int64_t> guarded_in_use{0};
  };
  struct Slab {
    void* addr;
    std::size_t length;
    std::size_t stacks;  // how many stacks it holds
  };

  std::size_t span_for(std::size_t request) const noexcept;
  bool is_default(std::size_t request) const noexcept;
  Stack acquire_shared();
  Stack acquire_slow(WorkerCache& cache);
  Stack allocate_default();
  Stack map_guarded(std::size_t span);
  Stack map_lone_canary(std::size_t span);
  Stack carve_from_slab();  // requires mutex_
  void release_to_shared(Stack* stacks, std::size_t n);
  void give_back_pages(const Stack& s) noexcept;
  void unmap(const Stack& s) noexcept;
  void count(WorkerCache* cache, const Stack& s, std::int64_t delta) noexcept;

  StackPoolOptions options_;
  std::size_t page_;
  std::size_t default_span_;    // span of a default stack (slab stride)
  std::size_t default_usable_;  // default_span_ - kStackCanaryZone
  std::size_t guard_budget_;
  std::size_t refill_batch_;  // stacks moved between a cache and the shared list

  std::unique_ptr<WorkerCache[]> caches_;
  std::unique_ptr<Stack[]> cache_slots_;

  // Counts guarded stacks mapped; relaxed: it is a budget, not a
  // synchronisation point (the mapping itself is published by the caller).
  std::atomic<std::size_t> guarded_mapped_{0};
  // Counters for acquire/release through the shared list (any thread).
  alignas(64) std::atomic<std::int64_t> shared_in_use_{0};
  std::atomic<std::int64_t> shared_guarded_in_use_{0};

  alignas(64) mutable std::mutex mutex_;  // guards everything below
  std::vector<Stack> hot_;                // free default stacks with their pages resident
  std::vector<Stack> cold_;               // free default stacks whose pages were given back
  std::vector<Slab> slabs_;
  std::size_t slab_next_ = 0;  // next free slot in slabs_.back()
};

// stack_canary_intact() is false when an unguarded stack's canary zone was
// overwritten (the fiber overflowed). Always true for guarded stacks. Cheap:
// one cache line, no system call; the scheduler calls it on every switch-out.
bool stack_canary_intact(const Stack& s) noexcept;

}  // namespace weft::detail
