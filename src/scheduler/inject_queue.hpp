// InjectQueue: the scheduler's global injection queue of T* (fibers woken or
// started by threads that are not workers, and the monitor's hand-offs).
//
// Many producers (any thread), many consumers (every worker), so neither a
// single-consumer queue (Vyukov's intrusive MPSC) nor a per-worker one fits
// without choosing a consumer. The fast path is D. Vyukov's bounded MPMC
// queue ("Bounded MPMC queue", 1024cores.net, 2010): a power-of-two ring of
// cells, each with a sequence number that says whose turn the cell is; a
// producer (consumer) claims a position with one CAS on the enqueue (dequeue)
// counter and then owns the cell until it publishes the next sequence number.
// No lock, no allocation, one CAS per operation on each side.
//
// A full ring spills into an overflow list under a mutex (a burst of more
// than kCapacity injections before any worker takes one: rare, and then the
// mutex is the least of the costs). Order: while the overflow holds anything,
// producers append there too, and consumers empty the ring before they take
// from the overflow, so a spilled item is never overtaken by a later one for
// ever (no starvation); injections that race each other have no order to
// keep in the first place.
//
// Guarantees: every pushed item is popped exactly once; what a producer wrote
// before push(x) happens-before what the consumer that pops x does after.
// try_pop() may return nullptr while a push that already claimed its cell has
// not yet published it: callers that need "there is work" read size() (the
// scheduler counts an injection before pushing it).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>

namespace weft::detail {

template <class T, std::size_t kCapacity = 1024>
class InjectQueue {
  static_assert(kCapacity >= 2 && (kCapacity & (kCapacity - 1)) == 0,
                "InjectQueue: the capacity is a power of two");

 public:
  InjectQueue() {
    for (std::size_t i = 0; i < kCapacity; ++i) cells_[i].seq.store(i, std::memory_order_relaxed);
  }
  InjectQueue(const InjectQueue&) = delete;
  InjectQueue& operator=(const InjectQueue&) = delete;

  // push() appends x (any thread). Never fails.
  void push(T* x) {
    // seq_cst: a producer that does not see the overflow spill must be one
    // whose item a consumer can find before the spilled ones (see try_pop).
    if (overflow_size_.load(std::memory_order_seq_cst) == 0 && try_push_ring(x)) return;
    std::lock_guard lk(overflow_mu_);
    overflow_.push_back(x);
    overflow_size_.fetch_add(1, std::memory_order_seq_cst);
  }

  // try_pop() takes the oldest item it can find, or returns nullptr (any
  // thread).
  T* try_pop() {
    if (T* x = try_pop_ring()) return x;
    if (overflow_size_.load(std::memory_order_seq_cst) == 0) return nullptr;
    std::lock_guard lk(overflow_mu_);
    if (overflow_.empty()) return nullptr;
    T* x = overflow_.front();
    overflow_.pop_front();
    overflow_size_.fetch_sub(1, std::memory_order_seq_cst);
    return x;
  }

  // spilled() is how many items wait in the overflow list (racy; tests).
  std::size_t spilled() const noexcept { return overflow_size_.load(std::memory_order_relaxed); }
  static constexpr std::size_t capacity() noexcept { return kCapacity; }

 private:
  static constexpr std::size_t kMask = kCapacity - 1;
  // Cell i of lap L: seq == L * kCapacity + i when free for the producer of
  // position L * kCapacity + i; seq == that position + 1 once it holds that
  // producer's item (the consumer's turn); the consumer then frees it for
  // the next lap with position + kCapacity.
  struct Cell {
    std::atomic<std::size_t> seq;
    T* item = nullptr;  // plain: ordered by seq (release/acquire)
  };

  bool try_push_ring(T* x) noexcept {
    std::size_t pos = enqueue_pos_.load(std::memory_order_relaxed);
    for (;;) {
      Cell& c = cells_[pos & kMask];
      // acquire: the consumer of the previous lap has read its item.
      const std::size_t seq = c.seq.load(std::memory_order_acquire);
      const auto dif = static_cast<std::intptr_t>(seq) - static_cast<std::intptr_t>(pos);
      if (dif == 0) {
        // relaxed: the cell is published by the seq store below, not by this.
        if (enqueue_pos_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
          c.item = x;
          c.seq.store(pos + 1, std::memory_order_release);  // the consumer's turn
          return true;
        }
      } else if (dif < 0) {
        return false;  // full: the cell of this position is a lap behind
      } else {
        pos = enqueue_pos_.load(std::memory_order_relaxed);  // another producer took it
      }
    }
  }

  T* try_pop_ring() noexcept {
    std::size_t pos = dequeue_pos_.load(std::memory_order_relaxed);
    for (;;) {
      Cell& c = cells_[pos & kMask];
      // acquire: pairs with the producer's release store of pos + 1.
      const std::size_t seq = c.seq.load(std::memory_order_acquire);
      const auto dif = static_cast<std::intptr_t>(seq) - static_cast<std::intptr_t>(pos + 1);
      if (dif == 0) {
        if (dequeue_pos_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
          T* x = c.item;
          c.seq.store(pos + kCapacity, std::memory_order_release);  // free for the next lap
          return x;
        }
      } else if (dif < 0) {
        return nullptr;  // empty (or its producer has not published yet)
      } else {
        pos = dequeue_pos_.load(std::memory_order_relaxed);  // another consumer took it
      }
    }
  }

  std::unique_ptr<Cell[]> cells_{new Cell[kCapacity]};
  alignas(64) std::atomic<std::size_t> enqueue_pos_{0};
  alignas(64) std::atomic<std::size_t> dequeue_pos_{0};
  alignas(64) std::atomic<std::size_t> overflow_size_{0};
  std::mutex overflow_mu_;
  std::deque<T*> overflow_;
};

}  // namespace weft::detail
