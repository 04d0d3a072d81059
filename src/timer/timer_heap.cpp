#include "timer/timer_heap.hpp"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <new>
#include <thread>

#include "weft/detail/assert.hpp"

namespace weft::detail {
namespace {

// The heap whose fire_expired runs on this thread (and so holds its lock), if
// any. Lets cancel() from a fire callback proceed instead of self-deadlocking,
// and turns the forbidden re-entrant insert/fire_expired into a clear abort.
thread_local const TimerHeap* tls_firing = nullptr;

// Alignment of the node block: one cache line.
constexpr std::align_val_t kNodeAlign{64};

inline std::int64_t ticks(Clock::time_point t) noexcept {
  return static_cast<std::int64_t>(t.time_since_epoch().count());
}

// FiringScope marks this thread as running `heap`'s fire callbacks.
class FiringScope {
 public:
  explicit FiringScope(const TimerHeap* heap) noexcept : previous_(tls_firing) {
    tls_firing = heap;
  }
  ~FiringScope() { tls_firing = previous_; }
  FiringScope(const FiringScope&) = delete;
  FiringScope& operator=(const FiringScope&) = delete;

 private:
  const TimerHeap* previous_;
};

}  // namespace

class TimerHeap::LockUnlessFiring {
 public:
  explicit LockUnlessFiring(const TimerHeap& heap) noexcept
      : lock_(tls_firing == &heap ? nullptr : &heap.lock_) {
    if (lock_ != nullptr) lock_->lock();
  }
  ~LockUnlessFiring() {
    if (lock_ != nullptr) lock_->unlock();
  }
  LockUnlessFiring(const LockUnlessFiring&) = delete;
  LockUnlessFiring& operator=(const LockUnlessFiring&) = delete;

 private:
  SpinLock* lock_;
};

TimerHeap::TimerHeap() noexcept = default;

TimerHeap::~TimerHeap() {
  WEFT_ASSERT(count_ == 0, "TimerHeap destroyed with {} pending timers", count_);
  // Release builds: leave no entry pointing at a dead heap.
  for (std::size_t i = 0; i < count_; ++i) {
    nodes_[i].entry->index_ = TimerEntry::npos;
    nodes_[i].entry->heap_ = nullptr;
  }
  if (nodes_ != nullptr) ::operator delete(nodes_ - kPad, kNodeAlign);
}

void TimerHeap::insert(TimerEntry* e) {
  WEFT_ASSERT(e != nullptr && e->fire != nullptr,
              "TimerHeap::insert: entry {} has no fire callback", fmt::ptr(e));
  WEFT_CHECK(tls_firing != this,
             "TimerHeap::insert of entry {} from a fire callback of the same heap", fmt::ptr(e));
  std::lock_guard guard(lock_);
  WEFT_CHECK(e->index_ == TimerEntry::npos, "TimerHeap::insert: entry {} is already in a heap",
             fmt::ptr(e));
  reserve_one_more();
  e->heap_ = this;
  e->seq_ = next_seq_++;
  const std::size_t hole = count_++;
  sift_up(hole, Node{ticks(e->deadline), e});
  publish();
}

bool TimerHeap::cancel(TimerEntry* e) noexcept {
  // Taking the lock is what waits for a fire(e) in progress on another thread.
  LockUnlessFiring guard(*this);
  return cancel_locked(e);
}

bool TimerHeap::cancel_locked(TimerEntry* e) noexcept {
  if (e->index_ == TimerEntry::npos) return false;  // fired, cancelled, or never inserted
  WEFT_ASSERT(e->heap_ == this && e->index_ < count_ && nodes_[e->index_].entry == e,
              "TimerHeap::cancel: entry {} belongs to another heap", fmt::ptr(e));
  remove_at(e->index_);
  publish();
  return true;
}

std::size_t TimerHeap::fire_expired(Clock::time_point now) {
  WEFT_CHECK(tls_firing != this, "TimerHeap::fire_expired from a fire callback of the same heap");
  const std::int64_t now_ticks = ticks(now);
  // Lock-free early out for the common "nothing due" case. Acquire: pairs with
  // publish(). An insert racing with this call may be missed; it is then
  // ordered after this call and fired by the next one.
  if (next_when_.load(std::memory_order_acquire) > now_ticks) return 0;
  std::lock_guard guard(lock_);
  FiringScope firing(this);
  std::size_t fired = 0;
  while (count_ > 0 && nodes_[0].when <= now_ticks) {
    TimerEntry* e = nodes_[0].entry;
    void (*fire)(TimerEntry*) = e->fire;
    remove_at(0);
    publish();
    fire(e);  // our last touch of e: it may be gone when this returns
    ++fired;
  }
  fired_total_.store(fired_total_.load(std::memory_order_relaxed) + fired,
                     std::memory_order_relaxed);
  return fired;
}

std::optional<Clock::time_point> TimerHeap::next_deadline() const noexcept {
  // Acquire: pairs with publish()'s release. The value alone would need only
  // relaxed (no entry is reached through it); acquire adds that a reader who
  // sees deadline D also sees what the inserting thread did before inserting,
  // at no cost on x86 (ldar on ARM).
  const std::int64_t when = next_when_.load(std::memory_order_acquire);
  if (when == kNone) return std::nullopt;
  return Clock::time_point(Clock::duration(when));
}

std::size_t TimerHeap::size() const noexcept {
  // Relaxed: a count, read racily by design.
  return published_size_.load(std::memory_order_relaxed);
}

bool TimerHeap::contains(const TimerEntry* e) const noexcept {
  LockUnlessFiring guard(*this);
  const std::size_t i = e->index_;
  return i != TimerEntry::npos && e->heap_ == this && i < count_ && nodes_[i].entry == e;
}

bool TimerHeap::check_invariants() const noexcept {
  LockUnlessFiring guard(*this);
  if (count_ > capacity_) return false;
  if (nodes_ != nullptr && reinterpret_cast<std::uintptr_t>(nodes_ + 1) % 64 != 0) return false;
  for (std::size_t i = 0; i < count_; ++i) {
    const Node& n = nodes_[i];
    if (n.entry == nullptr || n.entry->index_ != i || n.entry->heap_ != this) return false;
    if (n.when != ticks(n.entry->deadline)) return false;
    if (i > 0 && less(n, nodes_[(i - 1) / 4])) return false;  // heap order
  }
  // Relaxed: we hold the lock, which orders us after the last publish().
  if (published_size_.load(std::memory_order_relaxed) != count_) return false;
  const std::int64_t head = count_ > 0 ? nodes_[0].when : kNone;
  return next_when_.load(std::memory_order_relaxed) == head;
}

void TimerHeap::reserve_one_more() {
  if (count_ < capacity_) return;
  // Blocks (padding included) are powers of two, doubling; never shrunk, so a
  // heap that breathes between 0 and n entries allocates only while growing.
  const std::size_t block = capacity_ == 0 ? kMinCapacity + kPad : 2 * (capacity_ + kPad);
  Node* fresh = static_cast<Node*>(::operator new(block * sizeof(Node), kNodeAlign)) + kPad;
  if (count_ > 0) std::memcpy(fresh, nodes_, count_ * sizeof(Node));
  if (nodes_ != nullptr) ::operator delete(nodes_ - kPad, kNodeAlign);
  nodes_ = fresh;
  capacity_ = block - kPad;
}

void TimerHeap::sift_up(std::size_t i, Node n) noexcept {
  while (i > 0) {
    const std::size_t parent = (i - 1) / 4;
    if (!less(n, nodes_[parent])) break;
    place(i, nodes_[parent]);
    i = parent;
  }
  place(i, n);
}

void TimerHeap::sift_down(std::size_t i, Node n) noexcept {
  for (;;) {
    const std::size_t first = 4 * i + 1;
    if (first >= count_) break;
    const std::size_t end = std::min(first + 4, count_);
    std::size_t best = first;
    for (std::size_t c = first + 1; c < end; ++c) {
      if (less(nodes_[c], nodes_[best])) best = c;
    }
    if (!less(nodes_[best], n)) break;
    place(i, nodes_[best]);
    i = best;
  }
  place(i, n);
}

void TimerHeap::remove_at(std::size_t i) noexcept {
  TimerEntry* gone = nodes_[i].entry;
  gone->index_ = TimerEntry::npos;
  gone->heap_ = nullptr;
  const Node last = nodes_[--count_];
  if (i == count_) return;  // removed the last slot: nothing to move
  if (i > 0 && less(last, nodes_[(i - 1) / 4])) {
    sift_up(i, last);
  } else {
    sift_down(i, last);
  }
}

void TimerHeap::publish() noexcept {
  // Release: pairs with the acquire in next_deadline() and fire_expired()'s
  // early out. Called under the lock after every change.
  next_when_.store(count_ > 0 ? nodes_[0].when : kNone, std::memory_order_release);
  // Relaxed: size() promises only an approximate count.
  published_size_.store(count_, std::memory_order_relaxed);
}

}  // namespace weft::detail
