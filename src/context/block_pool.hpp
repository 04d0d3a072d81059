// Per-thread caches of small memory blocks: where fiber control blocks
// (FiberCore::operator new/delete) come from, so that a spawn/join pair
// reuses the block of the previous fiber instead of a malloc/free pair
// (issue 15; docs/performance.md). A sibling of the StackPool: memory
// recycled between fibers, in the context module because the sanitizer
// annotations (ASan poisoning of cached blocks) live there.
//
// Design (the allocators' "thread cache": tcmalloc's per-thread free lists,
// Go's per-P mcache; here, a bounded LIFO array per size class):
//  - Sizes up to kBlockPoolMaxSize round up to a 16-byte class. Each thread
//    keeps up to kBlockPoolCachePerClass free blocks of each class, owner-only:
//    no atomic, no lock on either path. 16 bytes is malloc's own granule
//    (glibc's chunks are 16-byte multiples with an 8-byte header): with
//    64-byte classes a 368-byte control block took a 384-byte class and a
//    400-byte chunk, with 16-byte ones a 368-byte class and a 384-byte chunk
//    (kernel_idle_memory, docs/performance.md). The cost is the cache's size:
//    64 classes x 64 slots x 8 bytes = 32 KiB per thread that frees a block.
//  - A block may be freed on any thread (the last handle of a fiber can be
//    dropped by a plain thread or another worker): it goes to the freeing
//    thread's cache, or to ::operator delete when that class is full. The
//    hand-over between the threads is the caller's (for a fiber, the
//    acq_rel decrement of its reference count, a happens-before edge TSan
//    sees).
//  - A thread's cache is freed when the thread exits; after that (other
//    thread-local destructors releasing fibers), blocks go straight to
//    ::operator delete.
//  - Under ASan a cached block is poisoned: a use of a fiber after its end
//    is still reported (as use-after-poison).
#pragma once

#include <cstddef>

namespace weft::detail {

// Block sizes the caches serve; larger ones go to ::operator new directly.
inline constexpr std::size_t kBlockPoolGranule = 16;
inline constexpr std::size_t kBlockPoolMaxSize = 1024;
// Free blocks kept per size class and thread.
inline constexpr std::size_t kBlockPoolCachePerClass = 64;

// block_allocate() returns `size` bytes aligned to
// __STDCPP_DEFAULT_NEW_ALIGNMENT__, from this thread's cache when it has a
// block of size's class. Throws std::bad_alloc.
void* block_allocate(std::size_t size);

// block_free() gives back a block from block_allocate(size) (any thread).
void block_free(void* p, std::size_t size) noexcept;

// block_pool_cached() is how many free blocks of size's class this thread
// caches (tests and benchmarks).
std::size_t block_pool_cached(std::size_t size) noexcept;

}  // namespace weft::detail
