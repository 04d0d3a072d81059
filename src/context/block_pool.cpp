// Per-thread small-block caches (see block_pool.hpp).
#include "context/block_pool.hpp"

#include <new>

#include "context/sanitizers.hpp"

namespace weft::detail {
namespace {

constexpr std::size_t kClasses = kBlockPoolMaxSize / kBlockPoolGranule;
static_assert(kBlockPoolMaxSize % kBlockPoolGranule == 0);
static_assert(kBlockPoolGranule % __STDCPP_DEFAULT_NEW_ALIGNMENT__ == 0,
              "every class keeps the default new alignment");

// class_of() is the size class of a size in (0, kBlockPoolMaxSize].
constexpr std::size_t class_of(std::size_t size) noexcept {
  return (size + kBlockPoolGranule - 1) / kBlockPoolGranule - (size == 0 ? 0 : 1);
}
constexpr std::size_t class_bytes(std::size_t c) noexcept { return (c + 1) * kBlockPoolGranule; }
static_assert(class_of(1) == 0 && class_of(kBlockPoolGranule) == 0 &&
              class_of(kBlockPoolGranule + 1) == 1);
static_assert(class_of(kBlockPoolMaxSize) == kClasses - 1);

void poison(void* p, std::size_t n) noexcept {
#if WEFT_CONTEXT_ASAN
  ASAN_POISON_MEMORY_REGION(p, n);
#else
  (void)p;
  (void)n;
#endif
}
void unpoison(void* p, std::size_t n) noexcept {
#if WEFT_CONTEXT_ASAN
  ASAN_UNPOISON_MEMORY_REGION(p, n);
#else
  (void)p;
  (void)n;
#endif
}

// Cache is one thread's free blocks: a LIFO array per class (the most
// recently freed block, still warm in this core's cache, is reused first).
// The links are outside the blocks, so a cached block is poisoned whole.
struct Cache {
  std::size_t count[kClasses] = {};
  void* blocks[kClasses][kBlockPoolCachePerClass];
};

// This thread's cache: made at its first free, freed at its exit by
// tls_drain's destructor. Both thread_locals below are trivially
// destructible, so they stay usable while other thread-local destructors
// run (a LocalMap releasing a fiber, after the drain).
thread_local Cache* tls_cache = nullptr;
thread_local bool tls_drained = false;

void drain(Cache* cache) noexcept {
  for (std::size_t c = 0; c < kClasses; ++c) {
    for (std::size_t i = 0; i < cache->count[c]; ++i) {
      unpoison(cache->blocks[c][i], class_bytes(c));
      ::operator delete(cache->blocks[c][i]);
    }
  }
  delete cache;
}

struct Drain {
  Drain() noexcept = default;
  Drain(const Drain&) = delete;
  Drain& operator=(const Drain&) = delete;
  ~Drain() {
    Cache* cache = tls_cache;
    tls_cache = nullptr;
    tls_drained = true;  // later frees of this thread bypass the cache
    if (cache != nullptr) drain(cache);
  }
};
thread_local Drain tls_drain;  // a non-trivial destructor: registered at first use

// make_cache() gives this thread a cache (nullptr once it exited, or when
// out of memory: the block is then simply freed).
Cache* make_cache() noexcept {
  if (tls_drained) return nullptr;
  auto* cache = new (std::nothrow) Cache;
  if (cache == nullptr) return nullptr;
  (void)&tls_drain;  // registers the drain for this thread's exit
  tls_cache = cache;
  return cache;
}

}  // namespace

void* block_allocate(std::size_t size) {
  if (size > kBlockPoolMaxSize) return ::operator new(size);
  const std::size_t c = class_of(size);
  if (Cache* cache = tls_cache; cache != nullptr && cache->count[c] != 0) {
    void* p = cache->blocks[c][--cache->count[c]];
    unpoison(p, class_bytes(c));
    return p;
  }
  return ::operator new(class_bytes(c));
}

void block_free(void* p, std::size_t size) noexcept {
  if (p == nullptr) return;
  if (size > kBlockPoolMaxSize) {
    ::operator delete(p);
    return;
  }
  const std::size_t c = class_of(size);
  Cache* cache = tls_cache;
  if (cache == nullptr) [[unlikely]]
    cache = make_cache();
  if (cache == nullptr || cache->count[c] == kBlockPoolCachePerClass) {
    ::operator delete(p);  // full: the allocator takes the surplus
    return;
  }
  poison(p, class_bytes(c));
  cache->blocks[c][cache->count[c]++] = p;
}

std::size_t block_pool_cached(std::size_t size) noexcept {
  if (size > kBlockPoolMaxSize || tls_cache == nullptr) return 0;
  return tls_cache->count[class_of(size)];
}

}  // namespace weft::detail
