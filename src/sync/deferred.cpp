// The non-template part of Deferred. See include/weft/deferred.hpp.
#include <weft/deferred.hpp>
#include <weft/this_fiber.hpp>

#include <stdexcept>
#include <string>

namespace weft::detail {

// ---------------------------------------------------------------------------
// Deferred

void throw_deferred_twice() {
  throw std::logic_error("weft::Deferred: completed twice (succeed/fail called after completion)");
}

void check_deferred_failure(const std::exception_ptr& error, const char* what) {
  if (!error)
    throw std::invalid_argument(std::string("weft::Deferred::") + what + ": null exception_ptr");
}

bool DeferredBase::wait_done_until(Deadline deadline, weft::source_location where) {
  detail::enter_yield_point(where);  // a yield point even when already complete
  if (done()) return true;
  WaitSlot slot;
  WaitStatus st;
  {  // no landing pad for the lock at the throw (SyncQueue::park_status)
    std::unique_lock lk(queue_.lock());
    if (done_.load(std::memory_order_relaxed)) return true;  // the lock orders it
    st = queue_.park_status(lk, slot, {"Deferred::await", this, where}, deadline);
  }
  return SyncQueue::finish_park(st, slot, kDeferredDestroyed);
}

}  // namespace weft::detail
