// race, race_exit, race_first: run contestants side by side, keep the first
// result, cancel the rest (DESIGN.md §1 "Combinators", §3.9).
//
// Guarantees (called from a fiber; each call is an interruptible yield point):
// - Contestants 1.. are forked as children of the racing fiber. Contestant 0
//   runs on the racer's own stack when the racer can be interrupted there
//   (include/weft/detail/timeout_scope.hpp, RaceScope): this_fiber::id()
//   there is the racer's, a sibling's win reaches it as an Interrupted only
//   the race catches (its finalizers run, catch (Interrupted&) sees it, an
//   uninterruptible region holds the win off until it ends), fibers it
//   forked are interrupted and awaited and its FiberLocal changes end with
//   it. Where the racer cannot be interrupted (a masked region, a finalizer,
//   a catch block, inside a timeout's task or another contestant 0) it is
//   forked too. On one worker they start in argument order (not a guarantee
//   with more workers).
// - race/race_exit: the first contestant to *succeed* wins. A failure does
//   not win while another contestant may still succeed. When every
//   contestant fails, the result is the Parallel cause of all of them, in
//   argument order (race rethrows it: one failure as the original
//   exception, several as CauseError, only interruptions as Interrupted;
//   escaping the racing fiber, it becomes that cause again, fibers included).
// - race_first: the first contestant to end wins, whatever its outcome.
// - The first to post wins: a value contestant 0 returns after a sibling's
//   win was recorded (its body returned, or ended for race_first) loses.
// - The losers are interrupted by the racing fiber (their Exit's
//   cause().interruptors() holds the racer's id; contestant 0 on the
//   racer's stack sees the same cause) and awaited: their
//   finalizers have run before race returns. A loser that had not started
//   never runs its body. An uninterruptible loser delays the return.
// - If the racing fiber is interrupted while it waits for a winner, every
//   contestant is interrupted and awaited, then Interrupted propagates. An
//   interrupt that arrives while the losers are being awaited stays pending
//   for the caller's next yield point (the winner's value is returned).
// - Contestants all return the same type R (void allowed). The variadic
//   forms take ownership of the callables (decay-copy, like fork); the
//   std::vector forms call the vector's elements in place, so the vector
//   must outlive the call (it does: race returns after every contestant ended).
// - No contestants: a compile error for the variadic forms, and
//   std::invalid_argument for an empty vector ("weft::race: no contestants
//   (empty vector)", naming race_exit or race_first for those).
// - Outside any fiber every form throws std::logic_error ("weft::race called
//   outside any fiber; use Runtime::spawn", naming the form called).
#pragma once

#include <weft/cause.hpp>
#include <weft/detail/contest.hpp>
#include <weft/detail/fiber_core.hpp>
#include <weft/detail/timeout_scope.hpp>
#include <weft/exit.hpp>
#include <weft/fiber.hpp>
#include <weft/this_fiber.hpp>

#include <fmt/format.h>

#include <concepts>
#include <cstddef>
#include <exception>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>
#include <weft/source_location.hpp>

namespace weft {
namespace detail {

// race_result_t<F...> is the common result type of the contestants (void for none).
template <class... F>
struct race_result {
  using type = void;
};
template <class F0, class... F>
struct race_result<F0, F...> : std::invoke_result<std::decay_t<F0>&> {};  // SFINAE-friendly
template <class... F>
using race_result_t = typename race_result<F...>::type;

// run_race_here() is a race whose contestant 0 runs on the racer's own
// stack under a RaceScope (include/weft/detail/timeout_scope.hpp) while
// fork_rest(contest, scope) forks the others; call0() runs contestant 0.
template <class R, class ForkRest, class Call0>
Exit<R> run_race_here(std::size_t n, bool first_completion, weft::source_location where,
                      ForkRest&& fork_rest, Call0&& call0) {
  // The scope first: the forked contestants report to it until the
  // Contest has awaited them, so it must outlive the Contest.
  RaceScope scope(first_completion);
  Contest contest(n, first_completion ? "race_first" : "race", where);
  fork_rest(contest, scope);
  std::optional<Exit<R>> value;  // contestant 0's success
  std::exception_ptr error;      // contestant 0 threw this (not the fire's)
  Cause failures0;               // its finalizers that failed
  const bool ran = scope.open();
  bool by_fire = !ran;  // a sibling won before it ran (DESIGN 3.2)
  if (ran) {
    // The racer's own interrupt passes (~Contest interrupts and awaits the
    // others, ~RaceScope closes).
    const ScopeEnd end = run_in_scope(
        scope,
        [&] {
          if constexpr (std::is_void_v<R>) {
            call0();
            value.emplace(Exit<R>::success());
          } else {
            value.emplace(Exit<R>::success(call0()));
          }
        },
        error);
    by_fire = end == ScopeEnd::fired;  // a sibling's win
    // Disarmed here: no sibling fires after it. The racer's own interrupt,
    // if it came after the win, stays pending (the losers are awaited).
    StackScope::Outcome o = scope.finish(false);
    failures0 = std::move(o.failures);
    if (!failures0.empty()) value.reset();  // a finalizer failed: no success
  }
  // cause0() is contestant 0's cause when it did not succeed (made only
  // when the race's result needs it: no second throw on the common path).
  auto cause0 = [&] {
    if (by_fire) return Cause::sequential(scope.interrupted_cause(), std::move(failures0));
    if (error) return StackScope::failure(error, std::move(failures0));
    return std::move(failures0);
  };
  const std::size_t decided = scope.decided_by();
  if (decided == RaceScope::npos && (value || first_completion)) {
    contest.stop();  // contestant 0 ended first: the others lose
    if (!value) return Exit<R>::failure(cause0());
  } else {
    // A sibling decided first (its value wins over one contestant 0 returned
    // meanwhile: the first to post wins, 3.13), or contestant 0 failed.
    const std::size_t winner = contest.race_rest(first_completion, decided);
    if (winner != Contest::npos) return exit_of<R>(contest, winner);
    // The decider's end failed after all (a late interrupt): contestant
    // 0's value, if it had one, is the race's only success.
    if (!value) return Exit<R>::failure(contest.parallel_cause(cause0()));
  }
  return std::move(*value);
}

// run_race_variadic() runs the contestants (contestant 0 on the racer's
// stack when RaceScope::usable()) and returns the winner's Exit (or the
// Parallel cause of all failures); `what` names the caller in errors.
template <class... F>
auto run_race_variadic(const char* what, bool first_completion, F&&... fs)
    -> Exit<race_result_t<F...>> {
  using R = race_result_t<F...>;
  static_assert(sizeof...(F) > 0, "weft::race needs at least one contestant");
  static_assert((std::is_same_v<R, std::invoke_result_t<std::decay_t<F>&>> && ...),
                "weft::race: every contestant must return the same type");
  (void)require_scheduler(what);  // std::logic_error outside a fiber, naming the call
  detail::throw_if_interrupted();
  if (RaceScope::usable()) {
    auto refs = std::forward_as_tuple(std::forward<F>(fs)...);
    using F0 = std::tuple_element_t<0, std::tuple<F&&...>>;
    return run_race_here<R>(
        sizeof...(F), first_completion, {},
        [&](Contest& contest, RaceScope& scope) {
          std::apply(
              [&](auto&&... f) {
                fork_all_but_first_reversed(contest, scope, std::index_sequence_for<F...>{},
                                            std::forward<decltype(f)>(f)...);
              },
              refs);
        },
        [&]() -> R {
          // Taken over like a forked contestant's callable: its captures
          // are destroyed as it ends, inside the scope.
          std::decay_t<F0> fn(std::forward<F0>(std::get<0>(refs)));
          return std::invoke(fn);
        });
  }
  Contest contest(sizeof...(F), first_completion ? "race_first" : "race");
  fork_all_reversed(contest, std::index_sequence_for<F...>{}, std::forward<F>(fs)...);
  const std::size_t winner = contest.race(first_completion);
  if (winner == Contest::npos) return Exit<R>::failure(contest.parallel_cause());
  return exit_of<R>(contest, winner);
}

// run_race_vector() is run_race_variadic() for a vector of callables.
template <class F>
auto run_race_vector(const char* what, bool first_completion, std::vector<F>& fs,
                     weft::source_location where) -> Exit<std::invoke_result_t<F&>> {
  using R = std::invoke_result_t<F&>;
  (void)require_scheduler(what);  // std::logic_error outside a fiber, naming the call
  if (fs.empty())
    throw std::invalid_argument(fmt::format("{}: no contestants (empty vector)", what));
  detail::enter_yield_point(where);
  if (RaceScope::usable()) {
    return run_race_here<R>(
        fs.size(), first_completion, where,
        [&](Contest& contest, RaceScope& scope) {
          for (std::size_t i = fs.size(); i-- > 1;) {
            auto fiber = weft::fork(RaceContestant<F, false>{contest.ticket(i), &scope, i, &fs[i]});
            contest.set(i, ref_of(fiber));
          }
        },
        [&]() -> R { return std::invoke(fs[0]); });
  }
  Contest contest(fs.size(), first_completion ? "race_first" : "race", where);
  for (std::size_t i = fs.size(); i-- > 0;) {
    auto fiber = weft::fork(ContestantRef<F>{contest.ticket(i), &fs[i]});
    contest.set(i, ref_of(fiber));
  }
  const std::size_t winner = contest.race(first_completion);
  if (winner == Contest::npos) return Exit<R>::failure(contest.parallel_cause());
  return exit_of<R>(contest, winner);
}

// value_or_throw() is exit.value(), moved out (nothing for void).
template <class R>
R value_or_throw(Exit<R>&& exit) {
  if constexpr (std::is_void_v<R>) {
    exit.value();
  } else {
    return std::move(exit).value();
  }
}

}  // namespace detail

// race_exit() runs every f, returns the Exit of the first to succeed, or the
// Parallel cause of all failures; never throws for contestant outcomes.
template <class... F>
requires(std::invocable<std::decay_t<F>&>&&...) [[nodiscard]] auto race_exit(F&&... f)
    -> Exit<detail::race_result_t<F...>> {
  return detail::run_race_variadic("weft::race_exit", false, std::forward<F>(f)...);
}

// race() runs every f and returns the value of the first to succeed; when
// all fail it rethrows (one failure: the original exception; several: CauseError).
template <class... F>
requires(std::invocable<std::decay_t<F>&>&&...) auto race(F&&... f) -> detail::race_result_t<F...> {
  using R = detail::race_result_t<F...>;
  return detail::value_or_throw<R>(
      detail::run_race_variadic("weft::race", false, std::forward<F>(f)...));
}

// race_first() runs every f and returns (or rethrows) the outcome of the
// first to end, success or failure.
template <class... F>
requires(std::invocable<std::decay_t<F>&>&&...) auto race_first(F&&... f)
    -> detail::race_result_t<F...> {
  using R = detail::race_result_t<F...>;
  return detail::value_or_throw<R>(
      detail::run_race_variadic("weft::race_first", true, std::forward<F>(f)...));
}

// race_exit() for a dynamic number of contestants; std::invalid_argument if empty.
template <class F>
[[nodiscard]] auto race_exit(std::vector<F>& fs,
                             weft::source_location where = weft::source_location::current())
    -> Exit<std::invoke_result_t<F&>> {
  return detail::run_race_vector("weft::race_exit", false, fs, where);
}

// race() for a dynamic number of contestants; std::invalid_argument if empty.
template <class F>
auto race(std::vector<F>& fs, weft::source_location where = weft::source_location::current())
    -> std::invoke_result_t<F&> {
  return detail::value_or_throw<std::invoke_result_t<F&>>(
      detail::run_race_vector("weft::race", false, fs, where));
}

// race_first() for a dynamic number of contestants; std::invalid_argument if empty.
template <class F>
auto race_first(std::vector<F>& fs, weft::source_location where = weft::source_location::current())
    -> std::invoke_result_t<F&> {
  return detail::value_or_throw<std::invoke_result_t<F&>>(
      detail::run_race_vector("weft::race_first", true, fs, where));
}

}  // namespace weft
