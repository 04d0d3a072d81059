// race, race_exit, race_first: run contestants side by side, keep the first
// result, cancel the rest (DESIGN.md §1 "Combinators", §3.9).
//
// Guarantees (called from a fiber; each call is an interruptible yield point):
// - Every contestant is forked as a child of the racing fiber. On one worker
//   they start in argument order (not a guarantee with more workers).
// - race/race_exit: the first contestant to *succeed* wins. A failure does
//   not win while another contestant may still succeed. When every
//   contestant fails, the result is the Parallel cause of all of them, in
//   argument order (race rethrows it: one failure as the original
//   exception, several as CauseError, only interruptions as Interrupted).
// - race_first: the first contestant to end wins, whatever its outcome.
// - The losers are interrupted by the racing fiber (their Exit's
//   cause().interruptors() holds the racer's id) and awaited: their
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
#include <weft/detail/fiber_core.hpp>
#include <weft/detail/wait_queue.hpp>
#include <weft/exit.hpp>
#include <weft/fiber.hpp>
#include <weft/this_fiber.hpp>

#include <fmt/format.h>

#include <concepts>
#include <cstddef>
#include <functional>
#include <limits>
#include <memory>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace weft {
namespace detail {

// value_t<R> is R, or std::monostate for void (tuples, vectors, optionals).
template <class R>
using value_t = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

// CompletionQueue is the racing fiber's inbox: each contestant posts its
// slot when its body has ended (or when it was dropped unstarted); one
// fiber pops them in that order. Built on the WaitQueue (no polling).
// Invariant: at most `capacity` slots are posted and not yet popped.
class CompletionQueue {
 public:
  // CompletionQueue(capacity) allocates room for `capacity` posted slots.
  explicit CompletionQueue(std::size_t capacity);
  CompletionQueue(const CompletionQueue&) = delete;
  CompletionQueue& operator=(const CompletionQueue&) = delete;

  // post() records that `slot` ended and wakes the popping fiber (any thread).
  void post(std::size_t slot) noexcept;
  // pop() is the next posted slot, waiting for one: an interruptible yield
  // point (throws Interrupted) unless the caller is masked.
  std::size_t pop(const char* what);

 private:
  WaitQueue waiters_;  // its lock guards the ring
  std::unique_ptr<std::size_t[]> ring_;
  std::size_t capacity_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

// CompletionTicket posts its slot to a CompletionQueue when destroyed. A
// contestant's callable holds one, so the post happens when the fiber
// destroys its callable: after the body ended, or when an unstarted fiber
// is dropped. Move-only: a moved-from ticket posts nothing.
class CompletionTicket {
 public:
  // CompletionTicket(q, slot) arms the ticket.
  CompletionTicket(CompletionQueue& q, std::size_t slot) noexcept : queue_(&q), slot_(slot) {}
  CompletionTicket(CompletionTicket&& o) noexcept
      : queue_(std::exchange(o.queue_, nullptr)), slot_(o.slot_) {}
  CompletionTicket(const CompletionTicket&) = delete;
  CompletionTicket& operator=(const CompletionTicket&) = delete;
  CompletionTicket& operator=(CompletionTicket&&) = delete;
  // ~CompletionTicket() posts the slot (once).
  ~CompletionTicket() {
    if (queue_ != nullptr) queue_->post(slot_);
  }

 private:
  CompletionQueue* queue_;
  std::size_t slot_;
};

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
  Contest(std::size_t slots, const char* what);
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

  const char* what_;
  CompletionQueue queue_;
  std::vector<FiberRef> fibers_;
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
  FiberCore& core = f.core();
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

// race_result_t<F...> is the common result type of the contestants (void for none).
template <class... F>
struct race_result {
  using type = void;
};
template <class F0, class... F>
struct race_result<F0, F...> : std::invoke_result<std::decay_t<F0>&> {};  // SFINAE-friendly
template <class... F>
using race_result_t = typename race_result<F...>::type;

// run_race_variadic() forks the contestants and returns the winner's Exit
// (or the Parallel cause of all failures); `what` names the caller in errors.
template <class... F>
auto run_race_variadic(const char* what, bool first_completion, F&&... fs)
    -> Exit<race_result_t<F...>> {
  using R = race_result_t<F...>;
  static_assert(sizeof...(F) > 0, "weft::race needs at least one contestant");
  static_assert((std::is_same_v<R, std::invoke_result_t<std::decay_t<F>&>> && ...),
                "weft::race: every contestant must return the same type");
  (void)require_scheduler(what);  // std::logic_error outside a fiber, naming the call
  detail::throw_if_interrupted();
  Contest contest(sizeof...(F), first_completion ? "race_first" : "race");
  fork_all_reversed(contest, std::index_sequence_for<F...>{}, std::forward<F>(fs)...);
  const std::size_t winner = contest.race(first_completion);
  if (winner == Contest::npos) return Exit<R>::failure(contest.parallel_cause());
  return exit_of<R>(contest, winner);
}

// run_race_vector() is run_race_variadic() for a vector of callables.
template <class F>
auto run_race_vector(const char* what, bool first_completion, std::vector<F>& fs)
    -> Exit<std::invoke_result_t<F&>> {
  using R = std::invoke_result_t<F&>;
  (void)require_scheduler(what);  // std::logic_error outside a fiber, naming the call
  if (fs.empty())
    throw std::invalid_argument(fmt::format("{}: no contestants (empty vector)", what));
  detail::throw_if_interrupted();
  Contest contest(fs.size(), first_completion ? "race_first" : "race");
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
[[nodiscard]] auto race_exit(std::vector<F>& fs) -> Exit<std::invoke_result_t<F&>> {
  return detail::run_race_vector("weft::race_exit", false, fs);
}

// race() for a dynamic number of contestants; std::invalid_argument if empty.
template <class F>
auto race(std::vector<F>& fs) -> std::invoke_result_t<F&> {
  return detail::value_or_throw<std::invoke_result_t<F&>>(
      detail::run_race_vector("weft::race", false, fs));
}

// race_first() for a dynamic number of contestants; std::invalid_argument if empty.
template <class F>
auto race_first(std::vector<F>& fs) -> std::invoke_result_t<F&> {
  return detail::value_or_throw<std::invoke_result_t<F&>>(
      detail::run_race_vector("weft::race_first", true, fs));
}

}  // namespace weft
