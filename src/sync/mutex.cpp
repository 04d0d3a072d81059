// Mutex: FIFO hand-off lock on detail::SyncQueue. See include/weft/mutex.hpp.
#include <weft/detail/assert.hpp>
#include <weft/detail/fiber_core.hpp>
#include <weft/mutex.hpp>
#include <weft/this_fiber.hpp>

#include "fiber/fiber_control.hpp"

#include <fmt/format.h>

#include <stdexcept>
#include <string_view>

namespace weft {

namespace {
constexpr const char* kMutexDestroyed = "weft::Mutex destroyed while fibers wait to lock it";
// user_site() is `where`, unless it is a line of the standard library: a
// lock through std::lock_guard, std::unique_lock or std::scoped_lock gets
// the guard's own line as the default argument. The fiber's last recorded
// site (the caller's line before the guard) says more in a dump.
weft::source_location user_site(weft::source_location where) noexcept {
  if (std::string_view(where.file_name()).find("/include/c++/") == std::string_view::npos)
    return where;
  detail::FiberCore* f = detail::current_fiber();
  return f != nullptr ? f->site() : where;
}

}  // namespace

void Mutex::lock(weft::source_location where) { (void)try_lock_until(Deadline::max(), where); }

bool Mutex::try_lock_until(Deadline deadline, weft::source_location where) {
  where = user_site(where);
  detail::enter_yield_point(where);
  const FiberId me = detail::current_id();
  LockSlot slot;
  slot.who = me;
  detail::WaitStatus st;
  {  // no landing pad for the lock at the throw (SyncQueue::park_status)
    std::unique_lock lk(queue_.lock());
    if (!locked_) {
      locked_ = true;
      owner_ = me;
      lk.unlock();
      detail::note_mutex_held(this, true);
      return true;
    }
    if (owner_ == me) {
      lk.unlock();
      throw std::logic_error(
          fmt::format("weft::Mutex: {} locks a mutex it already owns (it would wait forever)", me));
    }
    st = queue_.park_status(lk, slot, {"Mutex::lock", this, where}, deadline);
  }
  // True (woken): the unlocker made us the owner before resuming us.
  if (!detail::SyncQueue::finish_park(st, slot, kMutexDestroyed)) return false;
  detail::note_mutex_held(this, true);
  return true;
}

bool Mutex::try_lock() {
  std::lock_guard lk(queue_.lock());
  if (locked_) return false;  // stays locked while anyone waits (hand-off)
  locked_ = true;
  owner_ = detail::current_id();
  detail::note_mutex_held(this, true);
  return true;
}

void Mutex::unlock() {
  std::unique_lock lk(queue_.lock());
  WEFT_CHECK(locked_, "weft::Mutex: unlock() of an unlocked mutex by {}", detail::current_id());
  WEFT_CHECK(owner_ == detail::current_id(), "weft::Mutex: unlock() by {}, but {} owns it",
             detail::current_id(), owner_);
  detail::note_mutex_held(this, false);
  if (detail::Waiter* w = queue_.claim()) {
    owner_ = detail::SyncQueue::slot_of<LockSlot>(w).who;  // hand-off: stays locked
    lk.unlock();
    detail::SyncQueue::resume(w);
    return;
  }
  locked_ = false;
  owner_ = FiberId();
}

FiberId Mutex::owner() const {
  std::lock_guard lk(queue_.lock());
  return owner_;
}

}  // namespace weft
