// TimerHeap: one worker's pending timers (sleeps, timeouts), cancellable from
// any thread.
//
// Structure: a 4-ary min-heap of intrusive TimerEntry*, ordered by deadline,
// ties broken by insertion order. A d-ary heap with d = 4 has half the levels
// of a binary heap, and sift-down compares four children that sit side by side:
// each heap slot is 16 bytes (deadline + pointer) and the array is offset so
// that every group of four siblings fills exactly one 64-byte cache line
// (A. LaMarca and R. E. Ladner, "The Influence of Caches on the Performance of
// Heaps", JEA 1996; Go's runtime timers use the same 4-ary heap).
//
// Synchronisation: weft's one spin lock (detail::SpinLock). In the
// common case it is uncontended: only the owner worker inserts and fires;
// other threads only cancel. fire() callbacks run with the lock held, which is
// what makes cancel() precise:
//  - cancel(e) == true: e was removed before it fired; fire(e) never runs.
//  - cancel(e) == false: e was not in the heap (never inserted, already
//    cancelled, or fired). If it fired, fire(e) has returned and everything it
//    did happens-before cancel's return (the lock's release/acquire).
// Either way, when cancel returns the heap holds no reference to e.
// The heap stops touching an entry when it calls fire(e): the entry may be
// destroyed as soon as cancel(e) has returned, or from inside fire(e).
//
// Lock-free reads: next_deadline() and size() read atomics that every change
// publishes under the lock, so an idle worker on any thread can compute how
// long to sleep without taking it. next_deadline() is release/acquire (a
// reader that sees deadline D also sees what the inserter did before
// inserting); size() is relaxed (a count, approximate by contract).
//
// Callbacks run under the lock, so fire() must not take a lock that is held
// by a thread calling insert()/cancel() on this heap (that would deadlock);
// waking a fiber (pushing it on a run queue) is the intended use.
#pragma once

#include <weft/detail/spin_lock.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>

namespace weft::detail {

using Clock = std::chrono::steady_clock;

class TimerHeap;

// TimerEntry is one timer, intrusive: its storage is the caller's (e.g. on a
// fiber's stack) and must outlive its time in the heap. Set deadline and fire
// before insert(); do not change them while the entry is in a heap.
struct TimerEntry {
  static constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();

  Clock::time_point deadline{};  // when to fire
  // fire is called by fire_expired WITH THE HEAP LOCK HELD: it must be short
  // and must not insert into this heap (cancel from it is tolerated).
  void (*fire)(TimerEntry*) = nullptr;
  void* user = nullptr;  // free for the caller

  // Internal, owned by TimerHeap (read and written under its lock only).
  std::size_t index_ = npos;   // position in heap_, npos when not in a heap
  TimerHeap* heap_ = nullptr;  // the heap holding the entry, null when none
  std::uint64_t seq_ = 0;      // insertion number: tie-break for equal deadlines
};

// TimerHeap is a per-worker 4-ary min-heap of timers with a small spinlock.
class TimerHeap {
 public:
  // Creates an empty heap; allocates nothing until the first insert.
  TimerHeap() noexcept;
  // Destroys the heap, which must be empty (asserted in debug builds).
  ~TimerHeap();

  TimerHeap(const TimerHeap&) = delete;
  TimerHeap& operator=(const TimerHeap&) = delete;

  // insert() schedules e at e->deadline. O(log n); thread-safe; e must not be
  // in a heap. May throw std::bad_alloc (then nothing changed).
  void insert(TimerEntry* e);
  // cancel() removes e if still pending: true = removed, fire(e) never runs;
  // false = not pending (fired, cancelled or never inserted); if it fired,
  // returns only after fire(e) returned. O(log n); thread-safe.
  bool cancel(TimerEntry* e) noexcept;
  // fire_expired() pops and fires every entry with deadline <= now, in
  // deadline order (ties: insertion order); returns how many it fired.
  // Thread-safe (usually the owner; an idle worker may fire a busy one's).
  std::size_t fire_expired(Clock::time_point now);
  // next_deadline() is the earliest pending deadline, nullopt when none (an
  // entry at time_point::max() also reads as none: it is never due).
  // Lock-free, any thread; a snapshot that may be stale by the time it is read.
  std::optional<Clock::time_point> next_deadline() const noexcept;
  // fired_total() is how many entries fire_expired() has fired so far
  // (RuntimeStats::timers_fired). Lock-free, any thread.
  std::uint64_t fired_total() const noexcept {
    return fired_total_.load(std::memory_order_relaxed);
  }
  // size() is the number of pending entries. Lock-free, approximate.
  std::size_t size() const noexcept;
  // contains() says whether e is pending in this heap (for tests/asserts).
  bool contains(const TimerEntry* e) const noexcept;
  // check_invariants() verifies heap order, indices and the published
  // snapshots (for tests; takes the lock).
  bool check_invariants() const noexcept;

 private:
  // Node: one heap slot, 16 bytes, so four siblings fill one cache line.
  struct Node {
    std::int64_t when;  // e->deadline, as Clock ticks since the epoch
    TimerEntry* entry;
  };

  // LockUnlessFiring: the lock, unless this thread is inside this heap's
  // fire_expired (a fire callback), which already holds it.
  class LockUnlessFiring;

  static constexpr std::int64_t kNone = std::numeric_limits<std::int64_t>::max();
  // Padding slots before the root so that siblings 4i+1..4i+4 start on a
  // 64-byte boundary: root at byte 48, children of node i at byte 64(i+1).
  static constexpr std::size_t kPad = 3;
  static constexpr std::size_t kMinCapacity = 61;  // 64 slots with the padding

  static bool less(const Node& a, const Node& b) noexcept {
    return a.when < b.when || (a.when == b.when && a.entry->seq_ < b.entry->seq_);
  }
  void place(std::size_t i, const Node& n) noexcept {
    nodes_[i] = n;
    n.entry->index_ = i;
  }
  void reserve_one_more();
  void sift_up(std::size_t i, Node n) noexcept;
  void sift_down(std::size_t i, Node n) noexcept;
  void remove_at(std::size_t i) noexcept;
  bool cancel_locked(TimerEntry* e) noexcept;
  void publish() noexcept;

  mutable SpinLock lock_;
  // Read by other threads without the lock; published at the end of every
  // change, under the lock.
  std::atomic<std::int64_t> next_when_{kNone};
  std::atomic<std::size_t> published_size_{0};
  // Written under lock_ (a load and a store), read without it (relaxed: a statistic).
  std::atomic<std::uint64_t> fired_total_{0};

  // Guarded by lock_.
  Node* nodes_ = nullptr;  // points kPad slots into a 64-byte aligned block
  std::size_t count_ = 0;
  std::size_t capacity_ = 0;  // usable slots (excluding the padding)
  std::uint64_t next_seq_ = 0;
};

}  // namespace weft::detail
