// Finalizers: OnExit (RAII) and acquire_release (bracket).
//
// A finalizer runs uninterruptibly: it may yield, sleep and await without
// being torn down by a pending interrupt. An exception thrown by a finalizer
// while the scope is unwinding cannot propagate (C++ would terminate); it is
// recorded and added to the fiber's Exit cause after the original cause
// (DESIGN.md 3.7). Thrown on a normal scope exit, it propagates as usual.
//
// What an OnExit's cause can say while an exception propagates:
// - an interruption: the fiber's interrupt cause (who interrupted it);
// - any other exception: Fail(weft::InFlightException), a marker, not the
//   exception. C++ gives a destructor no way to reach the exception that is
//   unwinding through it: std::current_exception() is null there (it sees
//   only exceptions being *handled*, after a catch), or worse, inside an
//   outer catch block, the outer caught exception, not the propagating one.
//   The Itanium C++ ABI keeps only caught exceptions in __cxa_get_globals()
//   (caughtExceptions); the propagating _Unwind_Exception lives in the
//   unwinder's registers and is handed to landing pads, not to destructors.
//   Interposing __cxa_throw would miss std::rethrow_exception and foreign
//   exceptions, and a fiber may migrate threads mid-unwind: nothing sound.
// To see the exception itself: catch it in the body (`catch (...)`, then
// std::current_exception(), then `throw;`), or use acquire_release, whose
// release(r, cause) runs in a handler and gets Fail(the exception itself).
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

// InFlightException marks "an exception was propagating" in an OnExit's
// cause: the exception itself cannot be reached from a destructor (above).
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

namespace detail {
// release_after_failure() runs a bracket's release from the handler of the
// exception that ended `use`, with that exception's cause; a throw from the
// release is recorded (DESIGN 3.7) and never replaces the original.
template <class Release, class MakeCause>
void release_after_failure(Release& release_with, MakeCause make_cause) noexcept {
  Cause cause;
  try {
    cause = make_cause();
  } catch (...) {  // out of memory for the cause: the release must still run
  }
  try {
    release_with(cause);
  } catch (...) {
    record_finalizer_failure(std::current_exception());
  }
}

// call_or_release() returns use(); when use throws, release_with(cause)
// runs in the handler and the exception propagates. Unlike an OnExit, the
// handler reaches the exception, so the cause is Fail(that exception).
template <class Use, class Release>
decltype(auto) call_or_release(Use& use, Release& release_with) {
  try {
    return use();
  } catch (const Interrupted& e) {
    release_after_failure(release_with, [&] { return e.cause(); });
    throw;
  } catch (...) {
    release_after_failure(release_with, [] { return Cause::fail(std::current_exception()); });
    throw;
  }
}
}  // namespace detail

// acquire_release() runs `auto r = acquire(); return use(r);` and release(r)
// exactly once whatever use did. acquire and release run uninterruptibly, use
// with the caller's status. An interrupt during acquire: acquire finishes, use
// is never entered, release runs. release may take (r, const Cause&): empty
// on success, the interrupt cause on an interruption, and on a failure
// Fail(the exception use threw) itself (not the InFlightException an OnExit
// gets), while that exception propagates. A release that throws on success
// propagates; after a failure it is added to the fiber's cause.
template <class A, class U, class R>
auto acquire_release(A acquire, U use, R release) {
  Uninterruptible mask;
  auto resource = acquire();
  auto release_with = [&](const Cause& cause) {
    if constexpr (std::is_invocable_v<R&, decltype(resource)&, const Cause&>) {
      release(resource, cause);
    } else {
      release(resource);
    }
  };
  auto run_use = [&]() -> decltype(auto) {
    return mask.restore([&]() -> decltype(auto) {
      detail::throw_if_interrupted();
      return use(resource);
    });
  };
  if constexpr (std::is_void_v<decltype(run_use())>) {
    detail::call_or_release(run_use, release_with);
    release_with(Cause{});
  } else {
    auto result = detail::call_or_release(run_use, release_with);
    release_with(Cause{});
    return result;
  }
}

}  // namespace weft
