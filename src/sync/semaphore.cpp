// Semaphore: FIFO hand-off of permits on detail::SyncQueue. See
// include/weft/semaphore.hpp.
#include <weft/semaphore.hpp>
#include <weft/this_fiber.hpp>

namespace weft {

namespace {
constexpr const char* kSemaphoreDestroyed = "weft::Semaphore destroyed while fibers wait on it";
}  // namespace

void Semaphore::acquire() {
  this_fiber::check_interrupt();
  std::unique_lock lk(queue_.lock());
  if (permits_ > 0) {
    --permits_;
    return;
  }
  detail::WaitSlot slot;
  queue_.park(lk, slot, "Semaphore::acquire", kSemaphoreDestroyed);
  // Woken: the releaser handed its permit to us.
}

bool Semaphore::try_acquire() {
  std::lock_guard lk(queue_.lock());
  if (permits_ == 0) return false;
  --permits_;
  return true;
}

void Semaphore::release(std::size_t n) {
  std::unique_lock lk(queue_.lock());
  // Hand permits to the waiters first, oldest first; count the rest.
  detail::Waiter* claimed = nullptr;
  for (; n > 0; --n) {
    detail::Waiter* w = queue_.claim();
    if (w == nullptr) break;
    w->next = claimed;  // unlinked: the field is free for chaining
    claimed = w;
  }
  permits_ += n;
  lk.unlock();
  detail::SyncQueue::resume_chain(claimed);
}

std::size_t Semaphore::available() const {
  std::lock_guard lk(queue_.lock());
  return permits_;
}

}  // namespace weft
