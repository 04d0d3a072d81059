// Contest: the machinery shared by race, all and for_each_par. It owns the
// fibers of one call, indexed by slot; they report their end through a
// CompletionQueue, and none outlives the Contest (DESIGN.md 3.9, 3.11).
#pragma once

#include <weft/cause.hpp>
#include <weft/detail/completion_queue.hpp>
#include <weft/detail/fiber_core.hpp>
#include <weft/detail/fiber_group.hpp>
#include <weft/exit.hpp>
#include <weft/fiber.hpp>

#include <cstddef>
#include <functional>
#include <limits>
#include <weft/source_location.hpp>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace weft::detail {

// value_t<R> is R, or std::monostate for void (tuples, vectors, optionals).
template <class R>
using value_t = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

// Contestant wraps a callable F with its ticket. Members are destroyed in
// reverse order: the callable's captures (finalizers) first, then the
// ticket, so the post means "the body and its captures are done".
template <class F>
struct Contestant {
  CompletionTicket ticket;
  F fn;
  // operator() runs the contestant's body.
  decltype(auto) operator()() { return std::invoke(fn); }
};

// ContestantRef is a Contestant that calls a callable owned by the caller.
template <class F>
struct ContestantRef {
  CompletionTicket ticket;
  F* fn;
  // operator() runs the contestant's body.
  decltype(auto) operator()() { return std::invoke(*fn); }
};

// Contest owns the fibers of one race/all/for_each_par call, indexed by
// slot. Its destructor (and stop()) interrupts every contestant still
// running, attributed to the current fiber, and awaits all of them
// uninterruptibly: nothing a Contest started outlives it.
class Contest {
 public:
  static constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();

  // Contest(slots, what) prepares `slots` slots; `what` names the wait in dumps.
  // `where` is the combinator's call site (none for the variadic forms).
  Contest(std::size_t slots, const char* what, weft::source_location where = {});
  // ~Contest() is stop().
  ~Contest();
  Contest(const Contest&) = delete;
  Contest& operator=(const Contest&) = delete;

  // queue() is where the contestants' tickets post.
  CompletionQueue& queue() noexcept { return queue_; }
  // ticket() is a ticket for `slot`.
  CompletionTicket ticket(std::size_t slot) noexcept { return {queue_, slot}; }
  // set() records the fiber running in `slot`.
  void set(std::size_t slot, FiberRef fiber) noexcept { fibers_[slot] = std::move(fiber); }
  // fiber() is the fiber in `slot`.
  FiberCore& fiber(std::size_t slot) const noexcept { return *fibers_[slot].get(); }
  // size() is the number of slots.
  std::size_t size() const noexcept { return fibers_.size(); }

  // race() waits for the winner, stops the others and returns the winner's
  // slot, or npos when every contestant failed (first_completion: the first
  // to end wins whatever its outcome). Throws Interrupted (after stop()).
  std::size_t race(bool first_completion);
  // all() waits until every contestant succeeded (npos) or one did not: it
  // then stops the others and returns that slot. Throws Interrupted (after stop()).
  std::size_t all();
  // run_bounded() starts n items, at most size() at a time, through
  // start(ctx, item, slot) (which forks and set()s the slot); stops at the
  // first item that does not succeed and returns its cause (empty when all
  // succeeded). Throws Interrupted (after stop()).
  using StartItem = void (*)(void* ctx, Contest& contest, std::size_t item, std::size_t slot);
  Cause run_bounded(std::size_t n, StartItem start, void* ctx);
  // parallel_cause() is the Parallel cause of every slot's Exit, in slot order.
  Cause parallel_cause() const;
  // stop() interrupts the contestants still running and awaits them all.
  void stop() noexcept;

 private:
  // next_ended() pops a posted slot and awaits that fiber's end.
  std::size_t next_ended();

  WaitSite site_;
  CompletionQueue queue_;
  FiberGroup fibers_;  // slot i holds contestant i; run_bounded empties a slot between items
};

// exit_of() moves the Exit out of a contestant that ended (the Contest owns
// the only handle, so nobody else reads it).
template <class R>
Exit<R> exit_of(Contest& c, std::size_t slot) {
  return std::move(static_cast<FiberState<R>&>(c.fiber(slot)).exit());
}

// value_of() moves the value out of a contestant that succeeded.
template <class R>
value_t<R> value_of(Contest& c, std::size_t slot) {
  if constexpr (std::is_void_v<R>) {
    return std::monostate{};
  } else {
    return std::move(static_cast<FiberState<R>&>(c.fiber(slot)).exit()).value();
  }
}

// ref_of() is a new reference to f's control block.
template <class R>
FiberRef ref_of(const Fiber<R>& f) {
  FiberCore& core = detail::core_of(f);
  core.retain();
  return FiberRef(&core);
}

// fork_all_reversed() forks fs[i] into slot i, last first, so that on one
// worker (most recently forked runs first) they start in argument order.
template <std::size_t... I, class... F>
void fork_all_reversed(Contest& c, std::index_sequence<I...>, F&&... fs) {
  constexpr std::size_t n = sizeof...(F);
  auto refs = std::forward_as_tuple(std::forward<F>(fs)...);
  (
      [&] {
        constexpr std::size_t slot = n - 1 - I;
        using Fn = std::tuple_element_t<slot, std::tuple<F&&...>>;
        auto fiber = weft::fork(Contestant<std::decay_t<Fn>>{
            c.ticket(slot), std::decay_t<Fn>(std::forward<Fn>(std::get<slot>(refs)))});
        c.set(slot, ref_of(fiber));
      }(),
      ...);
}

}  // namespace weft::detail
