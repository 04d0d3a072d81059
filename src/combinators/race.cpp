// CompletionQueue: the completion inbox of race, all and for_each_par, on
// the SyncQueue.
#include <weft/race.hpp>

#include <weft/detail/assert.hpp>

#include <mutex>

namespace weft::detail {

// ---------------------------------------------------------------------------
// CompletionQueue

CompletionQueue::CompletionQueue(std::size_t capacity)
    : ring_(std::make_unique<std::size_t[]>(capacity == 0 ? 1 : capacity)),
      capacity_(capacity == 0 ? 1 : capacity) {}

void CompletionQueue::post(std::size_t slot) noexcept {
  std::unique_lock lk(waiters_.lock());
  WEFT_ASSERT(size_ < capacity_, "CompletionQueue: {} slots posted, capacity {}", size_ + 1,
              capacity_);
  ring_[(head_ + size_) % capacity_] = slot;
  ++size_;
  Waiter* w = waiters_.claim();
  lk.unlock();
  // The popping fiber cannot free this queue before it is resumed and has
  // awaited our fiber's end, which comes after this call returns.
  if (w != nullptr) SyncQueue::resume(w);
}

std::size_t CompletionQueue::pop(const WaitSite& site) {
  std::unique_lock lk(waiters_.lock());
  while (size_ == 0) {
    WaitSlot slot;  // post() hands over nothing: the slot is in the ring
    waiters_.park(lk, slot, site, "weft: a race's completion queue destroyed while awaited");
    lk.lock();  // park() returned with the lock released
  }
  const std::size_t slot = ring_[head_];
  head_ = (head_ + 1) % capacity_;
  --size_;
  return slot;
}

}  // namespace weft::detail
