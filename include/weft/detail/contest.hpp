// Contest: the machinery shared by race, all and for_each_par. It owns the
// fibers of one call, indexed by slot; they report their end through a
// CompletionQueue, and none outlives the Contest (DESIGN.md 3.9, 3.11).
#pragma once

#include <weft/cause.hpp>
#include <weft/detail/completion_queue.hpp>
#include <weft/detail/fiber_core.hpp>
#include <weft/detail/fiber_group.hpp>
#include <weft/detail/timeout_scope.hpp>
#include <weft/exit.hpp>
#include <weft/fiber.hpp>

#include <cstddef>
#include <functional>
#include <limits>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>
#include <weft/source_location.hpp>

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

// RaceContestant is a Contestant of a race whose contestant 0 runs on the
// racer's own stack (a RaceScope): as its body ends it tells the scope,
// which fires when that decides the race. Holds F (Owned) or calls an F
// owned by the caller (the vector forms).
template <class F, bool Owned>
struct RaceContestant {
  CompletionTicket ticket;
  RaceScope* scope;
  std::size_t slot;
  std::conditional_t<Owned, F, F*> fn;

  // operator() runs the body, then reports how it ended (also when it throws).
  decltype(auto) operator()() {
    struct Report {
      RaceScope* scope;
      std::size_t slot;
      bool ok = false;
      ~Report() { scope->sibling_ended(slot, ok); }
    } report{scope, slot};
    using R = std::invoke_result_t<F&>;
    if constexpr (std::is_void_v<R>) {
      call();
      report.ok = true;
    } else {
      R r = call();
      report.ok = true;
      return r;
    }
  }

 private:
  decltype(auto) call() {
    if constexpr (Owned) {
      return std::invoke(fn);
    } else {
      return std::invoke(*fn);
    }
  }
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
  // race_rest() is race() for the slots [1, size()) when slot 0 ran on the
  // racer's stack and did not win: `decided` is the slot whose end already
  // decided the race (RaceScope::decided_by()), awaited masked, since the
  // race is won (npos: none yet, the wait is interruptible).
  std::size_t race_rest(bool first_completion, std::size_t decided);
  // all() waits until every contestant succeeded (npos) or one did not: it
  // then stops the others and returns that slot. Throws Interrupted (after stop()).
  std::size_t all();
  // run_bounded() starts n items, at most size() at a time, through
  // start(ctx, item, slot) (which forks and set()s the slot); stops at the
  // first item that does not succeed and returns its cause (empty when all
  // succeeded). Throws Interrupted (after stop()).
  using StartItem = void (*)(void* ctx, Contest& contest, std::size_t item, std::size_t slot);
  Cause run_bounded(std::size_t n, StartItem start, void* ctx);
  // parallel_cause() is the Parallel cause of every slot's Exit, in slot
  // order, after `first` (the cause of a slot run without a fiber).
  Cause parallel_cause(Cause first = {}) const;
  // stop() interrupts the contestants still running and awaits them all.
  void stop() noexcept;

 private:
  // next_ended() pops a posted slot and awaits that fiber's end.
  std::size_t next_ended();
  // race_loop() is race() over `left` posts still to come.
  std::size_t race_loop(bool first_completion, std::size_t left, std::size_t decided);

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

// fork_all_but_first_reversed() forks fs[i] for i >= 1 into slot i as a
// RaceContestant of `scope`, last first (slot 0 is run by the racer itself).
template <std::size_t... I, class... F>
void fork_all_but_first_reversed(Contest& c, RaceScope& scope, std::index_sequence<I...>,
                                 F&&... fs) {
  constexpr std::size_t n = sizeof...(F);
  auto refs = std::forward_as_tuple(std::forward<F>(fs)...);
  (
      [&] {
        constexpr std::size_t slot = n - 1 - I;
        if constexpr (slot != 0) {
          using Fn = std::tuple_element_t<slot, std::tuple<F&&...>>;
          auto fiber = weft::fork(RaceContestant<std::decay_t<Fn>, true>{
              c.ticket(slot), &scope, slot,
              std::decay_t<Fn>(std::forward<Fn>(std::get<slot>(refs)))});
          c.set(slot, ref_of(fiber));
        }
      }(),
      ...);
}

}  // namespace weft::detail
