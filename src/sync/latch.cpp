// Latch: a countdown on detail::SyncQueue. See include/weft/latch.hpp.
#include <weft/latch.hpp>
#include <weft/this_fiber.hpp>

#include <fmt/format.h>

#include <stdexcept>

namespace weft {

namespace {
constexpr const char* kLatchDestroyed = "weft::Latch destroyed while fibers wait on it";
}  // namespace

Latch::Latch(std::ptrdiff_t count) : count_(count) {
  if (count < 0)
    throw std::invalid_argument(fmt::format("weft::Latch: negative initial count {}", count));
}

void Latch::count_down(std::ptrdiff_t n) { arrive(n, "count_down"); }

void Latch::arrive(std::ptrdiff_t n, const char* what) {
  std::unique_lock lk(queue_.lock());
  const std::ptrdiff_t count = count_.load(std::memory_order_relaxed);
  if (n < 0) {
    lk.unlock();
    throw std::invalid_argument(
        fmt::format("weft::Latch: {}({}) with a negative n (a latch never counts up)", what, n));
  }
  if (n > count) {
    lk.unlock();
    throw std::invalid_argument(
        fmt::format("weft::Latch: {}({}) with a count of {} (it must stay >= 0)", what, n, count));
  }
  // release: pairs with try_wait()'s acquire load.
  count_.store(count - n, std::memory_order_release);
  if (count - n == 0) queue_.wake_all(lk, [](detail::Waiter*) {});
}

void Latch::wait(weft::source_location where) { (void)wait_until(Deadline::max(), where); }

bool Latch::wait_until(Deadline deadline, weft::source_location where) {
  detail::enter_yield_point(where);
  if (try_wait()) return true;
  detail::WaitSlot slot;
  detail::WaitStatus st;
  {  // no landing pad for the lock at the throw (SyncQueue::park_status)
    std::unique_lock lk(queue_.lock());
    if (count_.load(std::memory_order_relaxed) == 0) return true;  // the lock orders it
    st = queue_.park_status(lk, slot, {"Latch::wait", this, where}, deadline);
  }
  return detail::SyncQueue::finish_park(st, slot, kLatchDestroyed);
}

void Latch::arrive_and_wait(std::ptrdiff_t n, weft::source_location where) {
  detail::enter_yield_point(where);  // an interrupted caller does not arrive
  arrive(n, "arrive_and_wait");
  wait(where);
}

}  // namespace weft
