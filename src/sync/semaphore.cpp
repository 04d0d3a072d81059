// Semaphore: FIFO hand-off of permits on detail::SyncQueue. See
// include/weft/semaphore.hpp.
#include <weft/semaphore.hpp>
#include <weft/this_fiber.hpp>

#include <fmt/format.h>

#include <limits>
#include <stdexcept>

namespace weft {

namespace {
constexpr const char* kSemaphoreDestroyed = "weft::Semaphore destroyed while fibers wait on it";
}  // namespace

void Semaphore::acquire(weft::source_location where) {
  (void)try_acquire_until(Deadline::max(), where);
}

bool Semaphore::try_acquire_until(Deadline deadline, weft::source_location where) {
  detail::enter_yield_point(where);
  detail::WaitSlot slot;
  detail::WaitStatus st;
  {  // no landing pad for the lock at the throw (SyncQueue::park_status)
    std::unique_lock lk(queue_.lock());
    if (permits_ > 0) {
      --permits_;
      return true;
    }
    st = queue_.park_status(lk, slot, {"Semaphore::acquire", this, where}, deadline);
  }
  // True (woken): the releaser handed its permit to us.
  return detail::SyncQueue::finish_park(st, slot, kSemaphoreDestroyed);
}

bool Semaphore::try_acquire() {
  std::lock_guard lk(queue_.lock());
  if (permits_ == 0) return false;
  --permits_;
  return true;
}

void Semaphore::release(std::size_t n) {
  std::unique_lock lk(queue_.lock());
  // permits_ is 0 while anyone waits, so only permits that would be counted
  // (not handed over) can overflow: check before handing anything over.
  if (n > std::numeric_limits<std::size_t>::max() - permits_) {
    const std::size_t available = permits_;
    lk.unlock();
    throw std::invalid_argument(fmt::format(
        "weft::Semaphore: release({}) with {} permits available overflows the permit count", n,
        available));
  }
  // Hand permits to the waiters first, oldest first; count the rest.
  detail::Waiter* claimed = nullptr;
  for (; n > 0; --n) {
    detail::Waiter* w = queue_.claim();
    if (w == nullptr) break;
    w->chain = claimed;
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
