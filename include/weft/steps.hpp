// run_steps: step-wise work with stop points (DESIGN.md §1 "Stop points").
//
// Guarantees:
// - Each step runs uninterruptibly (inside an Uninterruptible region): an
//   interrupt never tears a step in half.
// - Between steps the interrupt is honoured according to the StepPolicy, if
//   the caller is interruptible at that point (inside a mask it is not: all
//   steps run). The policy counts from the first boundary at which a pending
//   interrupt is seen: finish_current() starts no further step,
//   poll_next_n(n) starts at most n more, ignore() runs every step.
// - run_steps never throws Interrupted and never throws a step's exception:
//   it reports them in StepsOutcome::exit. exit is interrupted when the
//   policy stopped the run (the caller's interrupt cause); a failure when a
//   step threw (the failing step's index is in not_processed, with every
//   later one); success when every step ran, even if an interrupt was
//   ignored. The caller's interrupt stays pending in every case: its next
//   interruptible yield point throws Interrupted. (A fiber ending with an
//   interrupt pending discards its return value, so keep the outcome in a
//   variable of the forker when the run is a fiber of its own.)
// - values holds the results of the processed steps, in order (a void step
//   gives std::monostate); processed and not_processed are step indices.
// - Works on a plain thread too (nothing interrupts it there).
#pragma once

#include <weft/cause.hpp>
#include <weft/exit.hpp>
#include <weft/interrupt.hpp>
#include <weft/interrupted.hpp>

#include <cstddef>
#include <exception>
#include <functional>
#include <limits>
#include <ranges>
#include <type_traits>
#include <variant>
#include <vector>

namespace weft {

// StepPolicy says what an interrupt does to a run of steps.
class StepPolicy {
 public:
  // finish_current() finishes the step under way and starts no more (default).
  static StepPolicy finish_current() noexcept { return StepPolicy(0); }
  // poll_next_n() finishes the step under way and at most n more, then stops.
  static StepPolicy poll_next_n(std::size_t n) noexcept { return StepPolicy(n); }
  // ignore() runs every step whatever the interrupt.
  static StepPolicy ignore() noexcept { return StepPolicy(kAll); }
  // steps_after_interrupt() is how many steps may still start once an
  // interrupt was seen (SIZE_MAX: all of them).
  std::size_t steps_after_interrupt() const noexcept { return extra_; }

 private:
  static constexpr std::size_t kAll = std::numeric_limits<std::size_t>::max();
  explicit StepPolicy(std::size_t extra) noexcept : extra_(extra) {}
  std::size_t extra_;
};

// StepsOutcome is what a run of steps reports.
template <class R>
struct StepsOutcome {
  using Value = std::conditional_t<std::is_void_v<R>, std::monostate, R>;
  std::vector<Value> values;                // results of the steps that finished, in order
  std::vector<std::size_t> processed;       // indices of the steps that finished
  std::vector<std::size_t> not_processed;   // indices of the steps not run (or that threw)
  Exit<void> exit = Exit<void>::success();  // success, failure, or interrupted
};

namespace detail {

// StepGate applies a StepPolicy at step boundaries.
class StepGate {
 public:
  // StepGate(policy) starts with no interrupt seen.
  explicit StepGate(StepPolicy policy) noexcept : budget_(policy.steps_after_interrupt()) {}
  // may_start() says whether the next step may start (false: the run stops).
  bool may_start() noexcept;

 private:
  std::size_t budget_;  // steps that may start once the interrupt is seen
  bool seen_ = false;   // a pending interrupt was seen at a boundary
};

// steps_interrupted() is the Exit of a run the policy stopped: the current
// fiber's interrupt cause.
Exit<void> steps_interrupted();

}  // namespace detail

// run_steps() calls step(item) for each item, each uninterruptibly, and
// honours an interrupt between steps per `policy`; never throws Interrupted.
template <class Range, class F>
requires std::ranges::input_range<Range> &&
    std::invocable<F&, std::ranges::range_reference_t<Range>>
auto run_steps(Range&& items, F step, StepPolicy policy = StepPolicy::finish_current())
    -> StepsOutcome<std::invoke_result_t<F&, std::ranges::range_reference_t<Range>>> {
  using R = std::invoke_result_t<F&, std::ranges::range_reference_t<Range>>;
  StepsOutcome<R> out;
  detail::StepGate gate(policy);
  std::size_t index = 0;
  auto it = std::ranges::begin(items);
  const auto end = std::ranges::end(items);
  for (; it != end; ++it, ++index) {
    if (!gate.may_start()) {
      out.exit = detail::steps_interrupted();
      break;
    }
    try {
      Uninterruptible mask;
      if constexpr (std::is_void_v<R>) {
        std::invoke(step, *it);
        out.values.emplace_back();
      } else {
        out.values.push_back(std::invoke(step, *it));
      }
    } catch (const Interrupted& e) {
      out.exit = Exit<void>::failure(e.cause().empty() ? Cause::interrupt(FiberId()) : e.cause());
      break;
    } catch (...) {
      out.exit = Exit<void>::failure(Cause::fail(std::current_exception()));
      break;
    }
    out.processed.push_back(index);
  }
  for (; it != end; ++it, ++index) out.not_processed.push_back(index);
  return out;
}

}  // namespace weft
