// ChaseLevDeque: the per-worker work-stealing deque of T* (non-owning).
//
// Algorithm: D. Chase and Y. Lev, "Dynamic Circular Work-Stealing Deque",
// SPAA 2005. Memory orders: N. M. Lê, A. Pop, A. Cohen and F. Zappa Nardelli,
// "Correct and Efficient Work-Stealing for Weak Memory Models", PPoPP 2013
// (Fig. 1, the C11 version proved correct there).
//
// Guarantees:
//  - One owner thread calls push() and pop(); any thread calls steal(),
//    size_approx() and empty_approx().
//  - Every pushed item is returned exactly once, by pop() or by steal().
//  - Everything the owner wrote before push(x) happens-before whatever the
//    thread that obtains x (by pop or steal) does after obtaining it.
//  - pop() returns nullptr only when the deque is empty (the owner may lose
//    the last item to a thief). steal() returns nullptr when the deque looked
//    empty or when it lost a race for the top item; the caller may retry.
//  - push() never fails: a full buffer is replaced by one twice as large. Old
//    buffers stay allocated until the deque is destroyed, because a thief that
//    loaded the old buffer pointer may still read from it (but see trim()).
//
// Giving memory back (trim(), the owner, e.g. before its worker sleeps): a
// burst of forks grows the buffer (100,000 forks: 1 MiB, plus 1 MiB of
// replaced buffers), and idle fibers should not pay for it afterwards
// (kernel_idle_memory: 20 of its 4,500 bytes per fiber). Chase and Lev leave
// reclamation to a garbage collector, and freeing a replaced buffer safely
// needs the thieves to announce themselves: two locked instructions on every
// steal (tried: an uncontended steal went from 14 to 25 ns). Instead trim()
// keeps every buffer allocated and gives back the whole pages of the replaced
// ones, and of the current one when the deque is empty and the buffer holds
// at least kTrimBytes (madvise(MADV_DONTNEED): Go's scavenger in miniature).
// A page given back reads as zeros until written again. So a thief may read
// a null slot:
//  - from a replaced buffer it loaded before the growth: the item is still in
//    the deque (in the new buffer), so steal() returns "lost the race"
//    without its CAS;
//  - from the current buffer, with an index from before the deque emptied:
//    its CAS would fail anyway (top_ has passed that index).
// push() never stores null (a debug assertion), so a null slot is always one
// of these. The next pushes fault the current buffer's pages back in, zeroed.
//
// Deviations from Lê et al., both only ever stronger:
//  - pop() stores the decremented bottom with release, not relaxed. Lê et al.
//    rely on C11's release sequences, which included later relaxed stores by
//    the same thread: a thief that read that store synchronised with the
//    release fence of the push that published the items it then reads. C++20
//    (P0982R1) removed same-thread stores from release sequences, so the store
//    carries release itself. Free on x86; one stlr instead of str on ARM.
//  - ThreadSanitizer ignores standalone atomic_thread_fence, so it would see
//    neither the push's release fence nor the seq_cst fences of pop/steal. In
//    TSan builds (WEFT_TSAN or __SANITIZE_THREAD__ or
//    __has_feature(thread_sanitizer)) each fence is replaced by the equivalent
//    per-operation order: push's bottom store is release; pop's bottom store
//    and top load, and steal's top and bottom loads, are seq_cst. Seq_cst on
//    both sides of the store->load pair gives the same "one of us sees the
//    other" guarantee as the fences (a single total order S over those
//    operations), and TSan models their release/acquire halves.
// Not a deviation, an instruction choice: with clang on x86-64 the seq_cst
// fence is emitted as `lock or` (what g++ emits) instead of clang's mfence,
// see fence_seq_cst().
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "scheduler/fence.hpp"
#include "weft/detail/assert.hpp"

namespace weft::detail {

// DequeNoHooks: the default Hooks of a ChaseLevDeque (none). A test's Hooks
// may define the same static function to run code at that point of steal(),
// to force a race there (tests/test_deque.cpp).
struct DequeNoHooks {
  // between steal()'s load of buffer_ and its read of the slot
  static void steal_loaded_buffer() noexcept {}
};

// ChaseLevDeque<T> is a growable single-owner, multi-thief deque of T*.
template <class T, class Hooks = DequeNoHooks>
class ChaseLevDeque {
 public:
  // Creates an empty deque; initial_capacity must be a power of two (>= 1).
  explicit ChaseLevDeque(std::size_t initial_capacity = 256);
  // Frees every buffer; items are not owned and are not touched.
  ~ChaseLevDeque();

  ChaseLevDeque(const ChaseLevDeque&) = delete;
  ChaseLevDeque& operator=(const ChaseLevDeque&) = delete;

  // push() adds item at the bottom (LIFO end). Owner thread only; grows.
  void push(T* item);
  // pop() takes the most recently pushed item. Owner only; nullptr = empty.
  [[nodiscard("a popped item must be run or re-queued")]] T* pop();
  // steal() takes the oldest item. Any thread; nullptr = empty or lost a race.
  [[nodiscard("a stolen item must be run or re-queued")]] T* steal();
  // steal_half() is one thief visit that takes up to half of the items
  // (rounded up, at most max_items): it returns the oldest (nullptr = empty
  // or lost the race) and pushes the others, oldest first, onto `into`,
  // whose owner the calling thread must be; `*moved` (if given) is set to
  // how many it pushed there. Any thread; see the definition.
  [[nodiscard("a stolen item must be run or re-queued")]] T* steal_half(
      ChaseLevDeque& into, std::size_t max_items, std::size_t* moved = nullptr);
  // size_approx() is a racy estimate of the number of items (any thread).
  std::size_t size_approx() const noexcept;
  // empty_approx() is a racy "looks empty" (any thread).
  bool empty_approx() const noexcept { return size_approx() == 0; }
  // capacity() is the current buffer size (owner thread; for tests).
  std::size_t capacity() const noexcept;
  // trim() gives back the whole pages of the buffers growth replaced (each
  // once) and, when the deque is empty, of a current buffer of at least
  // kTrimBytes, unless top and bottom are where they were the last time
  // (owner only; see "Giving memory back"). Returns the bytes it gave back.
  std::size_t trim() noexcept;
  // retired() is how many replaced buffers are still allocated (owner; tests).
  std::size_t retired() const noexcept { return retired_.size(); }
  // Smaller current buffers keep their pages in trim().
  static constexpr std::size_t kTrimBytes = 64 * 1024;

 private:
  // Buffer: a power-of-two ring of atomic slots indexed by the unbounded
  // top/bottom counters. Slots are atomic (always accessed relaxed) because a
  // thief may read a slot while the owner writes another lap of the ring; the
  // value is only used if the thief's CAS on top then succeeds.
  struct Buffer {
    explicit Buffer(std::int64_t cap)
        : capacity(cap), mask(cap - 1), slots(new std::atomic<T*>[static_cast<std::size_t>(cap)]) {}
    T* get(std::int64_t i) const noexcept {
      return slots[i & mask].load(std::memory_order_relaxed);
    }
    void put(std::int64_t i, T* x) noexcept { slots[i & mask].store(x, std::memory_order_relaxed); }

    const std::int64_t capacity;
    const std::int64_t mask;
    const std::unique_ptr<std::atomic<T*>[]> slots;
  };

  // Orders that replace a fence under TSan (see the header comment).
  static constexpr std::memory_order kPushBottomStore =
      kTsan ? std::memory_order_release : std::memory_order_relaxed;
  static constexpr std::memory_order kFencedStore =
      kTsan ? std::memory_order_seq_cst : std::memory_order_release;
  static constexpr std::memory_order kFencedLoad =
      kTsan ? std::memory_order_seq_cst : std::memory_order_relaxed;
  static constexpr std::memory_order kStealTopLoad =
      kTsan ? std::memory_order_seq_cst : std::memory_order_acquire;
  static constexpr std::memory_order kStealBottomLoad =
      kTsan ? std::memory_order_seq_cst : std::memory_order_acquire;

  static void fence_seq_cst() noexcept { detail::fence_seq_cst(); }
  static void fence_release() noexcept {
    if constexpr (!kTsan) std::atomic_thread_fence(std::memory_order_release);
  }

  Buffer* grow(Buffer* old, std::int64_t top, std::int64_t bottom);
  // give_back() madvises the whole pages of buf's slots; returns their bytes.
  static std::size_t give_back(const Buffer& buf) noexcept;

  static constexpr std::size_t kCacheLine = 64;

  // Invariant: top_ <= bottom_ + 1 at all times; items live in [top_, bottom_).
  // top_: index of the oldest item. Only ever incremented, by a CAS (thieves,
  // or the owner racing for the last item).
  alignas(kCacheLine) std::atomic<std::int64_t> top_{0};
  // bottom_: one past the newest item. Written by the owner only.
  alignas(kCacheLine) std::atomic<std::int64_t> bottom_{0};
  // buffer_: the current ring. Written by the owner only (on growth); read by
  // every thief, so it gets a line of its own away from the hot counters.
  alignas(kCacheLine) std::atomic<Buffer*> buffer_;
  // retired_: buffers replaced by growth, freed in the destructor; the first
  // retired_trimmed_ of them had their pages given back by trim(). Owner only.
  std::vector<std::unique_ptr<Buffer>> retired_;
  std::size_t retired_trimmed_ = 0;
  // top_ and bottom_ when trim() last gave the current buffer's pages back
  // (-1: never). Owner only.
  std::int64_t trimmed_top_ = -1;
  std::int64_t trimmed_bottom_ = -1;
};

template <class T, class Hooks>
ChaseLevDeque<T, Hooks>::ChaseLevDeque(std::size_t initial_capacity) {
  if (initial_capacity == 0 || (initial_capacity & (initial_capacity - 1)) != 0 ||
      initial_capacity > (std::size_t{1} << 62)) {
    throw std::invalid_argument("ChaseLevDeque: initial_capacity " +
                                std::to_string(initial_capacity) + " is not a power of two");
  }
  // Relaxed: the deque is published to other threads by whatever hands them
  // its address (thread creation, a mutex, a release store).
  buffer_.store(new Buffer(static_cast<std::int64_t>(initial_capacity)), std::memory_order_relaxed);
}

template <class T, class Hooks>
ChaseLevDeque<T, Hooks>::~ChaseLevDeque() {
  // Relaxed: destruction requires that no other thread uses the deque any
  // more, which the caller established with its own synchronisation.
  delete buffer_.load(std::memory_order_relaxed);
}

template <class T, class Hooks>
void ChaseLevDeque<T, Hooks>::push(T* item) {
  WEFT_ASSERT(item != nullptr, "ChaseLevDeque: push(nullptr)");  // null: a trimmed slot
  // Relaxed: only this (owner) thread writes bottom_.
  const std::int64_t b = bottom_.load(std::memory_order_relaxed);
  // Acquire: pairs with the thieves' CAS on top_, so their reads of the slots
  // below t happen-before we overwrite those slots on the next lap.
  const std::int64_t t = top_.load(std::memory_order_acquire);
  // Relaxed: only this thread writes buffer_.
  Buffer* buf = buffer_.load(std::memory_order_relaxed);
  if (b - t > buf->capacity - 1) buf = grow(buf, t, b);
  buf->put(b, item);
  // Release fence + relaxed store (Lê et al.): publishes the slot and the
  // item's contents to a thief whose acquire load of bottom_ reads b + 1.
  // Under TSan the store itself is release instead.
  fence_release();
  bottom_.store(b + 1, kPushBottomStore);
}

template <class T, class Hooks>
T* ChaseLevDeque<T, Hooks>::pop() {
  // Relaxed: only this thread writes bottom_ and buffer_.
  const std::int64_t b = bottom_.load(std::memory_order_relaxed) - 1;
  Buffer* buf = buffer_.load(std::memory_order_relaxed);
  // Reserve slot b before looking at top_. Release (not relaxed, see header):
  // a thief that reads this value synchronises with everything we did before,
  // including the pushes of the items it may then steal. Seq_cst under TSan.
  bottom_.store(b, kFencedStore);
  // Seq_cst fence: the store above and the load of top_ below must not be
  // reordered (store->load), and must be in a total order with the thieves'
  // fence between their top and bottom loads: either we see a thief's top
  // increment or that thief sees our decremented bottom.
  fence_seq_cst();
  // Relaxed (seq_cst under TSan): ordered by the fence above.
  std::int64_t t = top_.load(kFencedLoad);
  if (t > b) {
    // Empty: undo the reservation. Relaxed: the seq_cst fence above is also a
    // release fence, so a thief reading this value synchronises with it.
    bottom_.store(b + 1, kPushBottomStore);
    return nullptr;
  }
  T* item = buf->get(b);
  if (t == b) {
    // Last item: race the thieves for it on top_. Seq_cst on success: it is
    // part of the same total order as the thieves' CAS; relaxed on failure:
    // the winner's item is not ours to read.
    if (!top_.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst,
                                      std::memory_order_relaxed)) {
      item = nullptr;  // a thief got it
    }
    // Relaxed: top_ is now b + 1 either way, so the deque is empty: a thief
    // that reads this value sees top_ == b + 1, or fails its CAS on top_.
    bottom_.store(b + 1, kPushBottomStore);
  }
  return item;
}

template <class T, class Hooks>
T* ChaseLevDeque<T, Hooks>::steal() {
  // Acquire: pairs with other thieves' (and the owner's) CAS on top_, and
  // keeps the loads below after this one.
  std::int64_t t = top_.load(kStealTopLoad);
  // Seq_cst fence: pairs with the owner's fence in pop() (see there).
  fence_seq_cst();
  // Acquire: pairs with push's release fence (or pop's release store), making
  // the slots below b and the items they point to visible.
  const std::int64_t b = bottom_.load(kStealBottomLoad);
  if (t >= b) return nullptr;  // empty
  // Acquire (Lê et al. use consume): pairs with the release store in grow(),
  // so the copied slots of a new buffer are visible. An older buffer is fine
  // too: it still holds slot t, and it stays allocated until ~ChaseLevDeque
  // (but trim() may have given its pages back: the null check below).
  Buffer* buf = buffer_.load(std::memory_order_acquire);
  Hooks::steal_loaded_buffer();
  T* item = buf->get(t);
  // A page trim() gave back: slot t is still in the deque (see "Giving
  // memory back"), so do not take it.
  if (item == nullptr) return nullptr;
  // Seq_cst: linearises the steal against other thieves and the owner's CAS
  // for the last item. Relaxed on failure: we read nothing through it.
  if (!top_.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst,
                                    std::memory_order_relaxed)) {
    return nullptr;  // lost the race; the caller may retry
  }
  return item;
}

// Batch stealing (Go's runqsteal/runqgrab, Tokio's steal_into) without a new
// protocol: a Chase-Lev thief cannot advance top_ by n with one CAS, because
// the owner's pop() takes items from the bottom with a plain store and only
// CASes top_ for the last item, so a CAS to t + n could take items the owner
// has already popped below it. Each item is taken by the proven steal() above
// (one CAS each); what the batch saves is the victim search, the thief's trips
// through its scheduling loop, and the wake-ups: the items moved stay in the
// thief's deque, where it pops them without contention. The count is read
// once, from the first successful steal's view: a steal that fails (empty, or
// a lost race with the owner or another thief) ends the batch.
template <class T, class Hooks>
T* ChaseLevDeque<T, Hooks>::steal_half(ChaseLevDeque& into, std::size_t max_items,
                                       std::size_t* moved) {
  if (moved != nullptr) *moved = 0;
  T* first = steal();
  if (first == nullptr) return nullptr;
  // Relaxed: an estimate (each steal() below does its own ordering). n is
  // what was left after `first`, so n + 1 items were there: take half of
  // them rounded up, `first` included (Go's n - n / 2).
  const std::size_t left = size_approx();
  std::size_t more = (left + 1) - (left + 1) / 2 - 1;
  if (max_items == 0) max_items = 1;
  if (more > max_items - 1) more = max_items - 1;
  for (std::size_t i = 0; i < more; ++i) {
    T* x = steal();
    if (x == nullptr) break;
    into.push(x);
    if (moved != nullptr) ++*moved;
  }
  return first;
}

template <class T, class Hooks>
std::size_t ChaseLevDeque<T, Hooks>::size_approx() const noexcept {
  // Relaxed: an estimate; the two loads are not a consistent snapshot.
  const std::int64_t b = bottom_.load(std::memory_order_relaxed);
  const std::int64_t t = top_.load(std::memory_order_relaxed);
  return b > t ? static_cast<std::size_t>(b - t) : 0;
}

template <class T, class Hooks>
std::size_t ChaseLevDeque<T, Hooks>::capacity() const noexcept {
  // Relaxed: owner-thread query; only the owner writes buffer_.
  return static_cast<std::size_t>(buffer_.load(std::memory_order_relaxed)->capacity);
}

template <class T, class Hooks>
typename ChaseLevDeque<T, Hooks>::Buffer* ChaseLevDeque<T, Hooks>::grow(Buffer* old,
                                                                        std::int64_t top,
                                                                        std::int64_t bottom) {
  WEFT_ASSERT(bottom - top == old->capacity, "ChaseLevDeque: grow at {} of {} items", bottom - top,
              old->capacity);
  WEFT_CHECK(old->capacity <= (std::int64_t{1} << 61), "ChaseLevDeque: capacity overflow");
  auto fresh = std::make_unique<Buffer>(old->capacity * 2);
  for (std::int64_t i = top; i < bottom; ++i) fresh->put(i, old->get(i));
  retired_.emplace_back(old);  // may throw: then `fresh` is freed, nothing changed
  // Release: pairs with steal()'s acquire load of buffer_, publishing the
  // copied slots (and the construction of the buffer) to thieves.
  buffer_.store(fresh.get(), std::memory_order_release);
  return fresh.release();
}

template <class T, class Hooks>
std::size_t ChaseLevDeque<T, Hooks>::give_back(const Buffer& buf) noexcept {
  // The whole pages inside the slots' allocation: the partial first and last
  // pages are shared with the allocator's bookkeeping or other blocks.
  static const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<std::uintptr_t>(buf.slots.get());
  const std::uintptr_t end = begin + static_cast<std::uintptr_t>(buf.capacity) * sizeof(T*);
  const std::uintptr_t first = (begin + page - 1) / page * page;
  const std::uintptr_t last = end / page * page;
  if (last <= first || ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED) != 0)
    return 0;
  return last - first;
}

template <class T, class Hooks>
std::size_t ChaseLevDeque<T, Hooks>::trim() noexcept {
  std::size_t given = 0;
  for (; retired_trimmed_ < retired_.size(); ++retired_trimmed_)
    given += give_back(*retired_[retired_trimmed_]);
  // Relaxed: only this thread writes bottom_ and buffer_. Acquire on top_,
  // as in push(): the thieves' reads of slots below it happen-before the
  // pages are zeroed.
  const std::int64_t b = bottom_.load(std::memory_order_relaxed);
  const Buffer* buf = buffer_.load(std::memory_order_relaxed);
  if (static_cast<std::size_t>(buf->capacity) * sizeof(T*) < kTrimBytes) return given;
  const std::int64_t t = top_.load(std::memory_order_acquire);
  // Not again while nothing moved since the last time (a worker that sleeps
  // often would pay a system call per sleep): pushes that pops took back
  // may have touched pages again, which stay until the deque next moves.
  if (t < b || (t == trimmed_top_ && b == trimmed_bottom_)) return given;
  given += give_back(*buf);
  trimmed_top_ = t;
  trimmed_bottom_ = b;
  return given;
}

}  // namespace weft::detail
