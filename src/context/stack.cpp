// StackPool: guarded stacks while the mapping budget lasts, canary stacks
// carved from slabs after that; per-worker LIFO caches in front of a shared,
// mutex-protected free list. See stack.hpp for the geometry.
#include "context/stack.hpp"

#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <new>
#include <stdexcept>

#include "context/sanitizers.hpp"
#include "weft/detail/assert.hpp"

namespace weft::detail {
namespace {

// The canary: each of the 8 words of the zone holds this seed xor its own
// address, so a zone copied from elsewhere (or zeroed) does not pass.
constexpr std::uint64_t kCanarySeed = 0x5745'4654'0FAD'E5C4ULL;
constexpr std::size_t kCanaryWords = kStackCanaryZone / sizeof(std::uint64_t);

std::uint64_t* canary_zone(const Stack& s) noexcept {
  return reinterpret_cast<std::uint64_t*>(static_cast<char*>(s.base) - kStackCanaryZone);
}

std::uint64_t canary_word(const std::uint64_t* where) noexcept {
  return kCanarySeed ^ reinterpret_cast<std::uintptr_t>(where);
}

void write_canary(const Stack& s) noexcept {
  std::uint64_t* zone = canary_zone(s);
  for (std::size_t i = 0; i < kCanaryWords; ++i) zone[i] = canary_word(zone + i);
}

// The depth sentinel: a word at the bottom of a stack's top page. A fiber
// that went deeper than that page has most likely overwritten it, so at
// release time it tells -- without a system call -- whether pages below the
// top page may be resident (see give_back_pages).
constexpr std::uint64_t kDepthSeed = 0x5745'4654'D3E9'7115ULL;

std::uint64_t* depth_sentinel(const Stack& s, std::size_t page) noexcept {
  auto top = reinterpret_cast<std::uintptr_t>(s.top());
  return reinterpret_cast<std::uint64_t*>((top - 1) / page * page);
}

void write_depth_sentinel(const Stack& s, std::size_t page) noexcept {
  std::uint64_t* word = depth_sentinel(s, page);
  *word = kDepthSeed ^ reinterpret_cast<std::uintptr_t>(word);
}

bool went_below_top_page(const Stack& s, std::size_t page) noexcept {
  const std::uint64_t* word = depth_sentinel(s, page);
  return *word != (kDepthSeed ^ reinterpret_cast<std::uintptr_t>(word));
}

std::size_t round_up(std::size_t n, std::size_t align) noexcept {
  return (n + align - 1) / align * align;
}

// Kernel mappings per guarded stack: the guard page and the stack. TSan
// shadows every application mapping with mappings of its own: 4 per guarded
// stack (and ~2.3 per slab) were measured.
constexpr std::size_t kMappingsPerGuardedStack = WEFT_CONTEXT_TSAN ? 4 : 2;

// The auto guard budget: keep 4096 mappings for everything else (malloc
// arenas, libraries, other pools) and give guarded stacks half of the rest,
// so the slabs of a million-fiber run still fit in the other half.
std::size_t auto_guard_budget() noexcept {
  std::size_t max_map_count = 65530;  // the stock default, if /proc is unreadable
  if (std::FILE* f = std::fopen("/proc/sys/vm/max_map_count", "r")) {
    unsigned long value = 0;
    if (std::fscanf(f, "%lu", &value) == 1) max_map_count = value;
    std::fclose(f);
  }
  constexpr std::size_t kReserve = 4096;
  return max_map_count > kReserve ? (max_map_count - kReserve) / (2 * kMappingsPerGuardedStack) : 0;
}

// MAP_NORESERVE: a million 256 KiB stacks are 256 GiB of address space, only
// the touched pages are ever committed. MAP_STACK: documentation, and on
// recent kernels no transparent huge pages.
void* map_stack_memory(std::size_t length) noexcept {
  void* p = ::mmap(nullptr, length, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

// Recycled stacks keep the ASan shadow of the frames that died on them
// (context_exit never unwinds the entry frames): clear it.
#if WEFT_CONTEXT_ASAN
// unpoison_range() clears the shadow of [beg, end) from its first poisoned
// byte up (the part of a stack frames used lies at the top).
void unpoison_range(char* beg, char* end) noexcept {
  if (void* first = __asan_region_is_poisoned(beg, static_cast<std::size_t>(end - beg))) {
    ASAN_UNPOISON_MEMORY_REGION(first, static_cast<std::size_t>(end - static_cast<char*>(first)));
  }
}
#endif

void unpoison(const Stack& s) noexcept {
#if WEFT_CONTEXT_ASAN
  // Only the used part, and only where the shadow was ever touched: shadow
  // pages no frame wrote are zero (unpoisoned), and reading them costs RSS
  // on kernels that commit a page on a read fault (a 6.18 Firecracker guest
  // does: the 100,000-stack test peaked at 3.6 GiB, 32 KiB of shadow read per
  // stack). mincore() says which shadow pages are resident without touching
  // them; only those are scanned.
  std::size_t scale = 0, offset = 0;
  __asan_get_shadow_mapping(&scale, &offset);
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  auto* const base = static_cast<char*>(s.base);
  auto* const top = static_cast<char*>(s.top());
  const std::uintptr_t shadow_beg = (reinterpret_cast<std::uintptr_t>(base) >> scale) + offset;
  const std::uintptr_t shadow_end = (reinterpret_cast<std::uintptr_t>(top) >> scale) + offset;
  const std::uintptr_t first_page = shadow_beg / page * page;
  constexpr std::size_t kChunk = 64;  // shadow pages per mincore() call
  unsigned char resident[kChunk];
  for (std::uintptr_t at = first_page; at < shadow_end; at += kChunk * page) {
    const std::size_t pages = std::min<std::size_t>(kChunk, (shadow_end - at + page - 1) / page);
    if (::mincore(reinterpret_cast<void*>(at), pages * page, resident) != 0) {
      std::memset(resident, 1, pages);  // cannot tell: scan them all
    }
    for (std::size_t i = 0; i < pages; ++i) {
      if ((resident[i] & 1) == 0) continue;
      // The application bytes this shadow page describes, within the stack.
      const std::uintptr_t sp = at + i * page;
      auto* lo = reinterpret_cast<char*>((sp - offset) << scale);
      auto* hi = reinterpret_cast<char*>((sp + page - offset) << scale);
      unpoison_range(std::max(lo, base), std::min(hi, top));
    }
  }
#else
  (void)s;
#endif
}

}  // namespace

bool stack_canary_intact(const Stack& s) noexcept {
  if (s.guarded) return true;
  const std::uint64_t* zone = canary_zone(s);
  std::uint64_t diff = 0;
  for (std::size_t i = 0; i < kCanaryWords; ++i) diff |= zone[i] ^ canary_word(zone + i);
  return diff == 0;
}

StackPool::StackPool(StackPoolOptions options) : options_(options) {
  if (options_.stack_size < kMinStackSize) {
    throw std::invalid_argument(fmt::format("weft: stack size {} is below the minimum of {} bytes",
                                            options_.stack_size, kMinStackSize));
  }
  if (options_.workers == 0) throw std::invalid_argument("weft: a StackPool needs >= 1 worker");
  page_ = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  default_span_ = span_for(options_.stack_size);
  default_usable_ = default_span_ - kStackCanaryZone;
  guard_budget_ = !options_.guard_pages        ? 0
                  : options_.guard_budget != 0 ? options_.guard_budget
                                               : auto_guard_budget();
  options_.slab_stacks = std::max<std::size_t>(options_.slab_stacks, 1);
  options_.slab_stacks_max = std::max(options_.slab_stacks_max, options_.slab_stacks);
  refill_batch_ = std::max<std::size_t>(options_.cache_per_worker / 2, 1);
  caches_ = std::make_unique<WorkerCache[]>(options_.workers);
  cache_slots_ = std::make_unique<Stack[]>(options_.workers * options_.cache_per_worker);
  for (unsigned w = 0; w < options_.workers; ++w)
    caches_[w].slots = cache_slots_.get() + w * options_.cache_per_worker;
}

StackPool::~StackPool() {
  WEFT_ASSERT(in_use() == 0, "StackPool destroyed with {} stacks still in use", in_use());
  // Slab stacks go with their slabs; guarded ones are mapped one by one.
  auto unmap_guarded = [this](const Stack& s) {
    if (s.guarded) unmap(s);
  };
  for (unsigned w = 0; w < options_.workers; ++w) {
    std::for_each(caches_[w].slots, caches_[w].slots + caches_[w].count, unmap_guarded);
  }
  std::for_each(hot_.begin(), hot_.end(), unmap_guarded);
  std::for_each(cold_.begin(), cold_.end(), unmap_guarded);
  for (const Slab& slab : slabs_) ::munmap(slab.addr, slab.length);
}

std::size_t StackPool::span_for(std::size_t request) const noexcept {
  return round_up(request + kStackCanaryZone, page_);
}

bool StackPool::is_default(std::size_t request) const noexcept {
  return request == 0 || span_for(request) == default_span_;
}

__attribute__((always_inline)) inline void StackPool::count(WorkerCache* cache, const Stack& s,
                                                            std::int64_t delta) noexcept {
  if (cache != nullptr) {
    // Only the owner writes these: a load and a store, no locked instruction.
    // Relaxed: they are statistics, read by in_use() for leak checks.
    cache->in_use.store(cache->in_use.load(std::memory_order_relaxed) + delta,
                        std::memory_order_relaxed);
    if (s.guarded) {
      cache->guarded_in_use.store(cache->guarded_in_use.load(std::memory_order_relaxed) + delta,
                                  std::memory_order_relaxed);
    }
    return;
  }
  shared_in_use_.fetch_add(delta, std::memory_order_relaxed);
  if (s.guarded) shared_guarded_in_use_.fetch_add(delta, std::memory_order_relaxed);
}

Stack StackPool::acquire(unsigned worker, std::size_t size) {
  WEFT_ASSERT(size == 0 || size >= kMinStackSize, "stack size {} below the minimum {}", size,
              kMinStackSize);
  WorkerCache* cache = worker < options_.workers ? &caches_[worker] : nullptr;
  Stack s;
  if (!is_default(size)) {
    const std::size_t span = span_for(size);
    s = map_guarded(span);
    if (!s) s = map_lone_canary(span);
  } else if (cache == nullptr || options_.cache_per_worker == 0) {
    s = acquire_shared();
  } else if (cache->count != 0) {
    s = cache->slots[--cache->count];  // the hot path: no lock, no system call
  } else {
    s = acquire_slow(*cache);
  }
  count(cache, s, +1);
  return s;
}

void StackPool::release(unsigned worker, Stack s) {
  WEFT_ASSERT(static_cast<bool>(s), "release of an empty Stack");
  WorkerCache* cache = worker < options_.workers ? &caches_[worker] : nullptr;
  count(cache, s, -1);
  unpoison(s);
  if (s.size != default_usable_) {
    unmap(s);
    return;
  }
  if (cache == nullptr || options_.cache_per_worker == 0) {
    release_to_shared(&s, 1);
    return;
  }
  if (cache->count == options_.cache_per_worker) {
    // Spill the least recently used half (the bottom of the LIFO).
    const std::size_t n = std::min(refill_batch_, cache->count);
    release_to_shared(cache->slots, n);
    std::memmove(cache->slots, cache->slots + n, (cache->count - n) * sizeof(Stack));
    cache->count -= n;
  }
  cache->slots[cache->count++] = s;
}

std::size_t StackPool::in_use() const noexcept {
  std::int64_t sum = shared_in_use_.load(std::memory_order_relaxed);
  for (unsigned w = 0; w < options_.workers; ++w)
    sum += caches_[w].in_use.load(std::memory_order_relaxed);
  return sum > 0 ? static_cast<std::size_t>(sum) : 0;
}

std::size_t StackPool::guarded_in_use() const noexcept {
  std::int64_t sum = shared_guarded_in_use_.load(std::memory_order_relaxed);
  for (unsigned w = 0; w < options_.workers; ++w)
    sum += caches_[w].guarded_in_use.load(std::memory_order_relaxed);
  return sum > 0 ? static_cast<std::size_t>(sum) : 0;
}

Stack StackPool::acquire_shared() {
  {
    std::lock_guard lock(mutex_);
    std::vector<Stack>& from = !hot_.empty() ? hot_ : cold_;
    if (!from.empty()) {
      Stack s = from.back();
      from.pop_back();
      return s;
    }
  }
  return allocate_default();
}

Stack StackPool::acquire_slow(WorkerCache& cache) {
  {
    std::lock_guard lock(mutex_);
    // Refill half the cache at once so the next acquires stay lock-free.
    for (std::size_t i = 0; i < refill_batch_; ++i) {
      std::vector<Stack>& from = !hot_.empty() ? hot_ : cold_;
      if (from.empty()) break;
      cache.slots[cache.count++] = from.back();
      from.pop_back();
    }
  }
  if (cache.count != 0) return cache.slots[--cache.count];
  return allocate_default();
}

Stack StackPool::allocate_default() {
  if (Stack s = map_guarded(default_span_)) return s;
  std::lock_guard lock(mutex_);
  return carve_from_slab();
}

Stack StackPool::map_guarded(std::size_t span) {
  // Reserve a slot of the budget first; relaxed: only the count matters.
  std::size_t mapped = guarded_mapped_.load(std::memory_order_relaxed);
  do {
    if (mapped >= guard_budget_) return {};
  } while (!guarded_mapped_.compare_exchange_weak(mapped, mapped + 1, std::memory_order_relaxed));

  void* region = map_stack_memory(page_ + span);
  if (region != nullptr && ::mprotect(region, page_, PROT_NONE) == 0) {
    Stack s{static_cast<char*>(region) + page_, span - kStackCanaryZone, true};
    write_depth_sentinel(s, page_);
    return s;
  }
  // Out of mappings (ENOMEM) despite the budget: fall back to a canary stack.
  if (region != nullptr) ::munmap(region, page_ + span);
  guarded_mapped_.fetch_sub(1, std::memory_order_relaxed);
  return {};
}

Stack StackPool::map_lone_canary(std::size_t span) {
  void* region = map_stack_memory(page_ + span);
  if (region == nullptr) throw std::bad_alloc();
  Stack s{static_cast<char*>(region) + page_, span - kStackCanaryZone, false};
  write_canary(s);
  return s;
}

Stack StackPool::carve_from_slab() {
  if (slabs_.empty() || slab_next_ == slabs_.back().stacks) {
    // Twice the previous slab, within [slab_stacks, slab_stacks_max].
    const std::size_t stacks = slabs_.empty()
                                   ? options_.slab_stacks
                                   : std::min(slabs_.back().stacks * 2, options_.slab_stacks_max);
    // One page for the first stack's canary, then the stacks back to back:
    // each canary zone sits in the top page of the stack below it.
    const std::size_t length = page_ + stacks * default_span_;
    void* addr = map_stack_memory(length);
    if (addr == nullptr) throw std::bad_alloc();
    // With THP "always", one touched byte could commit a 2 MiB page.
    ::madvise(addr, length, MADV_NOHUGEPAGE);
    slabs_.push_back(Slab{addr, length, stacks});
    slab_next_ = 0;
  }
  char* base = static_cast<char*>(slabs_.back().addr) + page_ + slab_next_ * default_span_;
  ++slab_next_;
  Stack s{base, default_usable_, false};
  write_canary(s);
  write_depth_sentinel(s, page_);
  return s;
}

void StackPool::release_to_shared(Stack* stacks, std::size_t n) {
  std::size_t kept = 0;
  {
    std::lock_guard lock(mutex_);
    const std::size_t room =
        hot_.size() < options_.resident_free ? options_.resident_free - hot_.size() : 0;
    kept = std::min(n, room);
    hot_.insert(hot_.end(), stacks, stacks + kept);
  }
  if (kept == n) return;
  // Beyond the resident count: give the pages back before publishing the
  // stacks (after that another thread may already be running on them).
  for (std::size_t i = kept; i < n; ++i) give_back_pages(stacks[i]);
  std::lock_guard lock(mutex_);
  cold_.insert(cold_.end(), stacks + kept, stacks + n);
}

void StackPool::give_back_pages(const Stack& s) noexcept {
  // A fiber that stayed in the top page left nothing to give back, and the
  // system call costs ~1.5 us here: skip it (the common case).
  if (!went_below_top_page(s, page_)) return;
  // Everything but the top page: the next fiber touches it at once, and on a
  // slab it also holds the canary of the stack above.
  ::madvise(s.base, default_span_ - page_, MADV_DONTNEED);
  write_depth_sentinel(s, page_);
}

void StackPool::unmap(const Stack& s) noexcept {
  ::munmap(static_cast<char*>(s.base) - page_, page_ + s.size + kStackCanaryZone);
  if (s.guarded) guarded_mapped_.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace weft::detail
