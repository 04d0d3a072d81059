// this_fiber: operations on the current fiber. Every blocking call here is a
// yield point: it throws weft::Interrupted when an interrupt is pending and
// the fiber is interruptible. On a plain thread they act on the thread.
#pragma once

#include <weft/detail/fiber_core.hpp>
#include <weft/fiber_id.hpp>

#include <chrono>
#include <weft/source_location.hpp>
#include <stop_token>

namespace weft {
namespace detail {
// throw_if_interrupted() is the entry check of weft's own yield points: it
// delivers a pending interrupt but, unlike this_fiber::check_interrupt(),
// never yields for a preemption request.
inline void throw_if_interrupted() {
  if (FiberCore* f = current_fiber()) f->throw_if_interrupted();
}
// note_site() records `where` as the current fiber's call site (a plain
// thread: nothing).
inline void note_site(weft::source_location where) noexcept {
  if (FiberCore* f = current_fiber()) f->note_site(where);
}
// enter_yield_point() is throw_if_interrupted() that first records `where`,
// the user's call site of a blocking call (Runtime::dump() shows it).
inline void enter_yield_point(weft::source_location where) {
  if (FiberCore* f = current_fiber()) {
    f->note_site(where);
    f->throw_if_interrupted();
  }
}
}  // namespace detail

namespace this_fiber {

// id() is the current fiber's id (a plain thread has one too).
FiberId id() noexcept;
// Every blocking call takes a defaulted weft::source_location: the caller's
// line, which Runtime::dump() and traces show (docs/debugging.md).
// yield() lets other fibers run; a yield point.
void yield(weft::source_location where = weft::source_location::current());
// sleep_for() suspends the fiber for d; a yield point.
void sleep_for(std::chrono::nanoseconds d,
               weft::source_location where = weft::source_location::current());
// sleep_until() suspends the fiber until t; a yield point.
void sleep_until(std::chrono::steady_clock::time_point t,
                 weft::source_location where = weft::source_location::current());
// now() is the clock that sleeps and deadlines use: steady_clock, or the
// runtime's virtual clock under RuntimeOptions::deterministic.
std::chrono::steady_clock::time_point now() noexcept;
// check_interrupt() is an explicit stop point for CPU loops: a load and a
// branch when nothing is pending. It is also where a long-running fiber gives
// way: when other work has waited for this fiber's worker for a monitor
// interval (RuntimeOptions::monitor_interval) and no idle worker could take
// it, the call yields once before checking (DESIGN 3.14). So a timeout on a
// CPU loop fires even on one worker.
// It records `where` for Runtime::dump() and the stall detector.
inline void check_interrupt(weft::source_location where = weft::source_location::current()) {
  // current_fiber() is not inlined: a fiber may migrate between two calls,
  // and an inlined thread_local address could be reused across the switch.
  if (detail::FiberCore* f = detail::current_fiber()) f->check_interrupt(where);
}
// interruptible() is the current interruptibility (false in masks and in
// finalizers while unwinding; always false on a plain thread, which cannot
// be interrupted).
bool interruptible() noexcept;
// interrupt_requested() is true when an interrupt is pending (never throws),
// including the deadline of a timeout whose task runs on this fiber's stack.
bool interrupt_requested() noexcept;
// stop_token() bridges to code that takes a std::stop_token. Taken while the
// fiber is interruptible, it fires (stop_requested(), stop_callbacks run on
// the interrupter's thread) when an interrupt is requested, or at once if
// one is pending. Taken where interrupts are masked (DESIGN 3.3, 3.4: an
// Uninterruptible region, ForkOptions::uninterruptible, a finalizer such as
// an OnExit or a destructor while unwinding, a catch block) it is
// std::stop_token{}, which never fires: a stop-aware flush in a finalizer
// runs to the end even while the fiber is being interrupted. The status is
// the one when the token is taken: take it where you call the stop-aware
// code. On a plain thread it never fires either.
std::stop_token stop_token();

}  // namespace this_fiber
}  // namespace weft
