// Finalizers: OnExit (RAII) and acquire_release (bracket).
//
// A finalizer runs uninterruptibly: it may yield, sleep and await without
// being torn down by a pending interrupt. An exception thrown by a finalizer
// while the scope is unwinding cannot propagate (C++ would terminate); it is
// recorded and added to the fiber's Exit cause after the original cause
// (DESIGN.md 3.7). Thrown on a normal scope exit, it propagates as usual.
#pragma once

#include <weft/cause.hpp>
#include <weft/detail/fiber_core.hpp>
#include <weft/interrupt.hpp>
#include <weft/this_fiber.hpp>

#include <exception>
#include <type_traits>
#include <utility>

namespace weft {

namespace detail {
// unwinding_cause() is the cause handed to a finalizer that runs while an
// exception propagates: the fiber's interrupt cause when it is being
// interrupted, otherwise a Fail holding an InFlightException marker (the
// propagating exception itself is not reachable from a destructor).
Cause unwinding_cause();
// record_finalizer_failure() keeps an exception thrown by a finalizer during
// unwinding (on the current fiber; on a plain thread it is printed).
void record_finalizer_failure(std::exception_ptr e) noexcept;
}  // namespace detail

// InFlightException marks "an exception was propagating" in a finalizer's cause.
struct InFlightException : std::exception {
  const char* what() const noexcept override { return "an exception was propagating"; }
};

// OnExit runs F when its scope ends; F may take (const Cause&), empty on success.
template <class F>
class [[nodiscard("an OnExit runs its finalizer when it is destroyed")]] OnExit {
 public:
  // OnExit(f) arms the finalizer.
  explicit OnExit(F f) : f_(std::move(f)), uncaught_(std::uncaught_exceptions()) {}
  OnExit(const OnExit&) = delete;
  OnExit& operator=(const OnExit&) = delete;
  // ~OnExit() runs the finalizer uninterruptibly.
  ~OnExit() noexcept(false) {
    const bool unwinding = std::uncaught_exceptions() > uncaught_;
    Uninterruptible mask;
    try {
      if constexpr (std::is_invocable_v<F&, const Cause&>) {
        f_(unwinding ? detail::unwinding_cause() : Cause{});
      } else {
        f_();
      }
    } catch (...) {
      if (!unwinding) throw;
      detail::record_finalizer_failure(std::current_exception());
    }
  }

 private:
  F f_;
  int uncaught_;
};

// acquire_release() runs `auto r = acquire(); return use(r);` and release(r)
// exactly once whatever use did. acquire and release run uninterruptibly, use
// with the caller's status. An interrupt during acquire: acquire finishes, use
// is never entered, release runs. release may take (r, const Cause&).
template <class A, class U, class R>
auto acquire_release(A acquire, U use, R release) {
  Uninterruptible mask;
  auto resource = acquire();
  auto finalizer = [&](const Cause& cause) {
    if constexpr (std::is_invocable_v<R&, decltype(resource)&, const Cause&>) {
      release(resource, cause);
    } else {
      release(resource);
    }
  };
  OnExit<decltype(finalizer)> on_exit(finalizer);
  return mask.restore([&]() -> decltype(auto) {
    detail::throw_if_interrupted();
    return use(resource);
  });
}

}  // namespace weft
