// all and for_each_par: run tasks side by side, fail fast (DESIGN.md §1
// "Combinators", §3.11).
//
// Guarantees (called from a fiber; each call is an interruptible yield point):
// - Every task is forked as a child of the calling fiber (on one worker they
//   start in argument order; not a guarantee with more workers).
// - Results come back in argument order; a void task gives std::monostate.
// - Fail fast: the first task that does not succeed (in the order the tasks
//   end) makes all interrupt the others (attributed to the caller) and await
//   them, finalizers included; then all rethrows that task's cause alone
//   (one failure: the original exception; several: CauseError; only an
//   interruption: Interrupted). Failures of siblings that end while being
//   interrupted are not reported. If it escapes the caller, the caller's
//   cause is that task's cause again, its fiber ids included (Cause::fail).
// - If the caller is interrupted while waiting, every task is interrupted
//   and awaited, then Interrupted propagates.
// - all() with no tasks returns std::tuple<>{} at once.
// - for_each_par(first, last, f, concurrency) calls f(*it) for every element
//   in its own fiber, at most `concurrency` at a time (0: std::invalid_argument).
// - Outside any fiber, all and for_each_par throw std::logic_error ("weft::all
//   called outside any fiber; use Runtime::spawn"), whatever the tasks.
//   f is shared by the fibers (called concurrently; it must be safe to).
//   After a failure no further element is started; the first failure is
//   rethrown once the running ones were interrupted and awaited.
#pragma once

#include <weft/cause.hpp>
#include <weft/detail/contest.hpp>
#include <weft/detail/fiber_core.hpp>
#include <weft/fiber.hpp>
#include <weft/this_fiber.hpp>

#include <algorithm>
#include <cstddef>
#include <functional>
#include <iterator>
#include <weft/source_location.hpp>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace weft {
namespace detail {

// all_values() builds the result tuple of a successful all().
template <class... F, std::size_t... I>
auto all_values(Contest& c, std::index_sequence<I...>)
    -> std::tuple<value_t<std::invoke_result_t<std::decay_t<F>&>>...> {
  return {value_of<std::invoke_result_t<std::decay_t<F>&>>(c, I)...};
}

}  // namespace detail

// all() runs every f concurrently and returns their values in argument
// order; the first failure interrupts and awaits the others, then is rethrown.
template <class... F>
requires(std::invocable<std::decay_t<F>&>&&...) auto all(F&&... f)
    -> std::tuple<detail::value_t<std::invoke_result_t<std::decay_t<F>&>>...> {
  (void)detail::require_scheduler("weft::all");  // std::logic_error outside a fiber
  if constexpr (sizeof...(F) == 0) {
    return {};
  } else {
    detail::throw_if_interrupted();
    detail::Contest contest(sizeof...(F), "all");
    detail::fork_all_reversed(contest, std::index_sequence_for<F...>{}, std::forward<F>(f)...);
    const std::size_t failed = contest.all();
    if (failed != detail::Contest::npos) detail::rethrow_cause(contest.fiber(failed).exit_cause());
    return detail::all_values<F...>(contest, std::index_sequence_for<F...>{});
  }
}

// all() for a dynamic number of tasks: their values in order (void:
// std::monostate); an empty vector gives an empty vector.
template <class F>
auto all(std::vector<F>& fs, weft::source_location where = weft::source_location::current())
    -> std::vector<detail::value_t<std::invoke_result_t<F&>>> {
  using R = std::invoke_result_t<F&>;
  (void)detail::require_scheduler("weft::all");  // std::logic_error outside a fiber
  std::vector<detail::value_t<R>> values;
  if (fs.empty()) return values;
  detail::enter_yield_point(where);
  detail::Contest contest(fs.size(), "all", where);
  for (std::size_t i = fs.size(); i-- > 0;) {
    auto fiber = weft::fork(detail::ContestantRef<F>{contest.ticket(i), &fs[i]});
    contest.set(i, detail::ref_of(fiber));
  }
  const std::size_t failed = contest.all();
  if (failed != detail::Contest::npos) detail::rethrow_cause(contest.fiber(failed).exit_cause());
  values.reserve(fs.size());
  for (std::size_t i = 0; i < fs.size(); ++i) values.push_back(detail::value_of<R>(contest, i));
  return values;
}

// for_each_par() calls f(*it) for each element, at most `concurrency` at a
// time; after a failure nothing more starts, and the first failure is rethrown.
template <std::forward_iterator It, class F>
requires std::invocable<F&, std::iter_reference_t<It>>
void for_each_par(It first, It last, F f, std::size_t concurrency,
                  weft::source_location where = weft::source_location::current()) {
  (void)detail::require_scheduler("weft::for_each_par");  // std::logic_error outside a fiber
  if (concurrency == 0)
    throw std::invalid_argument("weft::for_each_par: concurrency must be at least 1");
  const auto n = static_cast<std::size_t>(std::distance(first, last));
  if (n == 0) return;
  detail::enter_yield_point(where);
  struct Cursor {
    It next;  // the element of the next item (items start in order)
    F* f;
  };
  Cursor cursor{first, &f};
  auto start = [](void* ctx, detail::Contest& c, std::size_t, std::size_t slot) {
    auto& cur = *static_cast<Cursor*>(ctx);
    auto body = [fn = cur.f, it = cur.next]() mutable { std::invoke(*fn, *it); };
    auto fiber = weft::fork(detail::Contestant<decltype(body)>{c.ticket(slot), std::move(body)});
    c.set(slot, detail::ref_of(fiber));
    ++cur.next;
  };
  detail::Contest contest(std::min(concurrency, n), "for_each_par", where);
  Cause failure = contest.run_bounded(n, start, &cursor);
  if (!failure.empty()) detail::rethrow_cause(failure);
}

}  // namespace weft
