// Interruption control: self-interruption and the masking guards.
//
// Rules (DESIGN.md 3.3): inside an Uninterruptible region requests stay
// pending and are delivered at the first yield point after the outermost
// region closes. restore(f) runs f with the status in force before that
// guard; Interruptible re-opens delivery unconditionally. Guards must be
// destroyed on the fiber that made them, innermost first (checked).
// this_fiber::stop_token() follows the same status: a token taken inside a
// mask never fires (this_fiber.hpp).
//
// On a plain thread (no fiber) the guards are a documented no-op: a thread
// cannot be interrupted, so there is nothing to mask or unmask. Inside them
// this_fiber::interruptible() stays false (Interruptible included),
// interrupt_requested() false, stop_token() unstoppable, and restore(f)
// just calls f. Code shared by fibers and threads may use them freely.
#pragma once

#include <weft/detail/fiber_core.hpp>
#include <weft/interrupted.hpp>

#include <cstdint>
#include <type_traits>
#include <utility>

namespace weft {

// interrupt() interrupts the current fiber: throws Interrupted at once when
// interruptible; inside a mask it records the request and returns.
void interrupt();

namespace detail {
// MaskGuard sets the current fiber's interruptibility for its scope.
class MaskGuard {
 public:
  explicit MaskGuard(bool interruptible) noexcept;
  ~MaskGuard();
  MaskGuard(const MaskGuard&) = delete;
  MaskGuard& operator=(const MaskGuard&) = delete;
  // previous() is the status in force before this guard.
  bool previous() const noexcept { return previous_; }
  FiberCore* fiber() const noexcept { return fiber_; }

 private:
  FiberCore* fiber_;
  bool previous_ = false;
  std::uint32_t depth_ = 0;
};
}  // namespace detail

// Uninterruptible masks interruption in its scope (RAII; regions nest).
class [[nodiscard("a guard masks only while it lives")]] Uninterruptible {
 public:
  // Uninterruptible() masks the current fiber.
  Uninterruptible() noexcept : guard_(false) {}
  // restore() runs f with the interruptibility in force before this guard.
  template <class F>
  auto restore(F && f)->std::invoke_result_t<F> {
    detail::MaskGuard inner(guard_.previous());
    return std::forward<F>(f)();
  }

 private:
  detail::MaskGuard guard_;
};

// Interruptible re-opens delivery in its scope, even inside a mask.
class [[nodiscard("a guard unmasks only while it lives")]] Interruptible {
 public:
  // Interruptible() makes the current fiber interruptible.
  Interruptible() noexcept : guard_(true) {}

 private:
  detail::MaskGuard guard_;
};

}  // namespace weft
