// timeout, timeout_exit, timeout_or_throw: give a task a deadline (DESIGN.md
// §1 "Combinators", §3.10).
//
// Guarantees (called from a fiber; each call is an interruptible yield point):
// - f runs as the caller's task: on the caller's own stack when the caller
//   can be interrupted there (no fiber, no stack, no switch: the deadline
//   interrupts the caller with an Interrupted only this timeout catches;
//   include/weft/detail/timeout_scope.hpp), else (a masked region, a
//   finalizer, a catch block, inside another timeout's task) in a child
//   fiber, which starts interruptible. Either way the task sees the same
//   rules: its FiberLocal changes end with it, fibers it forked are
//   interrupted and awaited before timeout returns. If it ends first, its
//   outcome is returned (a value as std::optional<R>, R = void giving
//   std::optional<std::monostate>; a failure rethrown) and its timer is
//   cancelled: no timer entry outlives the call.
// - On expiry f is interrupted, attributed to the caller, and awaited (its
//   finalizers have run when timeout returns std::nullopt). A task that is
//   uninterruptible when the time runs out delays the return until it ends;
//   its value is then discarded (std::nullopt, like Effect's timeout). A
//   task that returns its value just as the deadline passes, before any
//   yield point could deliver the interrupt, keeps it: timeout returns the
//   value, so a read or a receive that won the race is never lost. A
//   failure raised while it unwinds (a throwing finalizer) is never lost:
//   it is rethrown.
// - "Timed out" vs "interrupted by my parent": expiry returns std::nullopt;
//   an interrupt of the caller while it waits interrupts and awaits f, then
//   throws Interrupted. timeout_or_throw turns expiry into TimedOut.
// - A zero or negative duration has already expired: f never runs (like a
//   fiber interrupted before it started), or, forked, is interrupted at once
//   and awaited: it usually never runs.
// - timeout(d, [&] { return disconnect(g); }) returns at the deadline: the
//   interrupt ends the disconnect at once while g goes on in the background.
// - Outside any fiber each form throws std::logic_error ("weft::timeout called
//   outside any fiber; use Runtime::spawn", naming the form called).
#pragma once

#include <weft/detail/contest.hpp>
#include <weft/detail/fiber_core.hpp>
#include <weft/detail/timeout_scope.hpp>
#include <weft/exit.hpp>
#include <weft/fiber.hpp>
#include <weft/this_fiber.hpp>

#include <chrono>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>
#include <weft/source_location.hpp>

namespace weft {

// TimedOut is what timeout_or_throw throws when the deadline passes first.
struct TimedOut : std::exception {
  // what() is "weft::TimedOut: the deadline passed before the task ended".
  const char* what() const noexcept override;
};

namespace detail {

// TimeoutWait tells how waiting for a task under a deadline ended.
enum class TimeoutWait : unsigned char {
  finished,   // the task ended before the deadline
  timed_out,  // the deadline passed: the task was interrupted and has ended
};

// await_with_deadline() waits for `task` until now + d; on expiry it
// interrupts the task (attributed to the caller) and awaits it uninterruptibly.
// If the caller is interrupted while waiting, the task is interrupted and
// awaited, then Interrupted propagates.
TimeoutWait await_with_deadline(FiberCore& task, std::chrono::nanoseconds d,
                                weft::source_location where);

// timeout_result_t<F> is the value type timeout returns for f.
template <class F>
using timeout_value_t = value_t<std::invoke_result_t<std::decay_t<F>&>>;

// run_timeout_here() runs f on the caller's own stack under a TimeoutScope
// (include/weft/detail/timeout_scope.hpp): no fiber, no stack, no switch.
template <class F>
auto run_timeout_here(std::chrono::nanoseconds d, F& f) -> Exit<std::optional<timeout_value_t<F>>> {
  using R = std::invoke_result_t<std::decay_t<F>&>;
  using V = value_t<R>;
  using Out = Exit<std::optional<V>>;
  TimeoutScope scope(d);
  std::optional<V> slot;
  bool by_deadline = scope.expired();  // then f never runs (DESIGN 3.2)
  if (!by_deadline) {
    std::exception_ptr error;
    // The caller's own interrupt passes (~TimeoutScope ends the scope);
    // anything else, an Interrupted rethrown from a join included, is the
    // task's failure, as a forked task's would be.
    const ScopeEnd end = run_in_scope(
        scope,
        [&] {
          if constexpr (std::is_void_v<R>) {
            f();
            slot.emplace();
          } else {
            slot.emplace(f());
          }
        },
        error);
    if (end == ScopeEnd::failed) {
      TimeoutScope::Outcome o = scope.finish(false);
      return Out::failure(TimeoutScope::failure(error, std::move(o.failures)));
    }
    by_deadline = end == ScopeEnd::fired;
  }
  TimeoutScope::Outcome o = scope.finish(by_deadline);
  if (!o.failures.empty()) return Out::failure(std::move(o.failures));
  // A value wins unless the deadline's request met a mask (DESIGN 3.10).
  if (slot && !o.held_off) return Out::success(std::move(slot));
  return Out::success(std::nullopt);
}

// run_timeout() is timeout_exit(); `what` names the caller in errors.
template <class F>
auto run_timeout(const char* what, std::chrono::nanoseconds d, F&& f, weft::source_location where)
    -> Exit<std::optional<timeout_value_t<F>>> {
  using R = std::invoke_result_t<std::decay_t<F>&>;
  using V = value_t<R>;
  using Out = Exit<std::optional<V>>;
  (void)require_scheduler(what);  // std::logic_error outside a fiber, naming the call
  detail::enter_yield_point(where);
  if (TimeoutScope::usable()) return run_timeout_here(d, f);
  // The caller cannot be interrupted here (a mask, a finalizer, a catch
  // block, a timeout already open on its stack): the task gets a fiber of
  // its own, which starts interruptible (DESIGN 3.3).
  // The task stores f's value here before its body ends: a task that
  // returns just as the deadline interrupts it then ends interrupted (the
  // end of a body is an interruptible boundary, DESIGN 3.5), and without
  // this slot the value (bytes a read_some took, an item a receive took)
  // would be lost (3.13: a timed-out read consumed nothing). The task is
  // awaited before this frame returns, so it may borrow it.
  std::optional<V> slot;
  Fiber<void> task = weft::fork([&slot, fn = std::decay_t<F>(std::forward<F>(f))]() mutable {
    if constexpr (std::is_void_v<R>) {
      fn();
      slot.emplace();
    } else {
      slot.emplace(fn());
    }
  });
  auto& core = detail::core_of(task);
  const TimeoutWait how = await_with_deadline(core, d, where);
  // A value wins unless the interrupt met a mask: an uninterruptible task
  // that outlived its deadline has its value discarded (3.10, nullopt).
  const bool held_off = how == TimeoutWait::timed_out && core.interrupt_held_off();
  if (slot && !held_off) return Out::success(std::move(slot));
  Exit<void>& exit = core.exit();  // only handle
  if (!exit.ok() && (how == TimeoutWait::finished || exit.cause().has_failure()))
    return Out::failure(exit.cause());
  return Out::success(std::nullopt);
}

}  // namespace detail

// timeout_exit() runs f with a deadline: success(value), success(nullopt) on
// expiry, or f's failure cause. Throws Interrupted if the caller is interrupted.
template <class F>
[[nodiscard]] auto timeout_exit(std::chrono::nanoseconds d, F&& f,
                                weft::source_location where = weft::source_location::current())
    -> Exit<std::optional<detail::timeout_value_t<F>>> {
  return detail::run_timeout("weft::timeout_exit", d, std::forward<F>(f), where);
}

// timeout() runs f with a deadline: its value, or std::nullopt on expiry;
// f's failure is rethrown.
template <class F>
auto timeout(std::chrono::nanoseconds d, F&& f,
             weft::source_location where = weft::source_location::current())
    -> std::optional<detail::timeout_value_t<F>> {
  return std::move(detail::run_timeout("weft::timeout", d, std::forward<F>(f), where)).value();
}

// timeout_or_throw() runs f with a deadline: its value, TimedOut on expiry,
// f's failure rethrown.
template <class F>
auto timeout_or_throw(std::chrono::nanoseconds d, F&& f,
                      weft::source_location where = weft::source_location::current())
    -> std::invoke_result_t<std::decay_t<F>&> {
  auto result =
      std::move(detail::run_timeout("weft::timeout_or_throw", d, std::forward<F>(f), where))
          .value();
  if (!result) throw TimedOut{};
  if constexpr (!std::is_void_v<std::invoke_result_t<std::decay_t<F>&>>) {
    return std::move(*result);
  }
}

}  // namespace weft
