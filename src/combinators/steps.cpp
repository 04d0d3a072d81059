// run_steps: the non-template part (the policy at step boundaries).
#include <weft/steps.hpp>

#include <weft/detail/fiber_core.hpp>
#include <weft/this_fiber.hpp>

#include "fiber/fiber_control.hpp"

namespace weft::detail {

bool StepGate::may_start() noexcept {
  if (!seen_) {
    // Only an interrupt the caller could receive here counts (DESIGN 3.3:
    // inside a mask it stays pending).
    if (!this_fiber::interruptible() || !this_fiber::interrupt_requested()) return true;
    seen_ = true;
  }
  if (budget_ == 0) return false;
  if (budget_ != std::numeric_limits<std::size_t>::max()) --budget_;
  return true;
}

Exit<void> steps_interrupted() {
  FiberCore* self = current_fiber();
  Cause cause = self != nullptr ? control(*self).interrupt_cause() : Cause();
  if (cause.empty()) cause = Cause::interrupt(current_id());
  return Exit<void>::failure(std::move(cause));
}

}  // namespace weft::detail
