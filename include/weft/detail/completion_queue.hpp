// CompletionQueue and CompletionTicket: the inbox through which the fibers
// of a race, all or for_each_par report that they ended.
#pragma once

#include <weft/detail/sync_queue.hpp>

#include <cstddef>
#include <memory>
#include <utility>

namespace weft::detail {

// CompletionQueue is the racing fiber's inbox: each contestant posts its
// slot when its body has ended (or when it was dropped unstarted); one
// fiber pops them in that order. Parks through the SyncQueue (no polling).
// Invariant: at most `capacity` slots are posted and not yet popped.
class CompletionQueue {
 public:
  // CompletionQueue(capacity) allocates room for `capacity` posted slots.
  explicit CompletionQueue(std::size_t capacity);
  CompletionQueue(const CompletionQueue&) = delete;
  CompletionQueue& operator=(const CompletionQueue&) = delete;

  // post() records that `slot` ended and wakes the popping fiber (any thread).
  void post(std::size_t slot) noexcept;
  // pop() is the next posted slot, waiting for one: an interruptible yield
  // point (throws Interrupted) unless the caller is masked.
  std::size_t pop(const WaitSite& site);

 private:
  SyncQueue waiters_;  // its lock guards the ring
  std::unique_ptr<std::size_t[]> ring_;
  std::size_t capacity_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

// CompletionTicket posts its slot to a CompletionQueue when destroyed. A
// contestant's callable holds one, so the post happens when the fiber
// destroys its callable: after the body ended, or when an unstarted fiber
// is dropped. Move-only: a moved-from ticket posts nothing.
class CompletionTicket {
 public:
  // CompletionTicket(q, slot) arms the ticket.
  CompletionTicket(CompletionQueue& q, std::size_t slot) noexcept : queue_(&q), slot_(slot) {}
  CompletionTicket(CompletionTicket&& o) noexcept
      : queue_(std::exchange(o.queue_, nullptr)), slot_(o.slot_) {}
  CompletionTicket(const CompletionTicket&) = delete;
  CompletionTicket& operator=(const CompletionTicket&) = delete;
  CompletionTicket& operator=(CompletionTicket&&) = delete;
  // ~CompletionTicket() posts the slot (once).
  ~CompletionTicket() {
    if (queue_ != nullptr) queue_->post(slot_);
  }

 private:
  CompletionQueue* queue_;
  std::size_t slot_;
};

}  // namespace weft::detail
