// FiberGroup: "interrupt all, then await all masked", in one place.
#include <weft/detail/fiber_group.hpp>
#include "fiber/fiber_control.hpp"

namespace weft::detail {

void FiberGroup::interrupt(FiberId by) const {
  // Every request before any wait: the members unwind in parallel.
  for (const FiberRef& m : members_)
    if (m && !m->done()) m->request_interrupt(by);
}

void FiberGroup::await_masked() const noexcept {
  for (const FiberRef& m : members_)
    if (m) control(*m).await_done_masked();
}

FiberCore* FiberGroup::await_masked_until(
    std::chrono::steady_clock::time_point deadline) const noexcept {
  for (const FiberRef& m : members_)
    if (m && !control(*m).await_done_masked_until(deadline)) return m.get();
  return nullptr;
}

void FiberGroup::await(weft::source_location where) const {
  for (const FiberRef& m : members_)
    if (m) m->await_done(where, "interrupt_all");
}

void FiberGroup::stop(FiberId by) const noexcept {
  interrupt(by);
  await_masked();
}

}  // namespace weft::detail
