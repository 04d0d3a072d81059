// TimeoutScope: a timeout whose task runs on the caller's own stack (weft
// issue 15; docs/internals.md "Timeouts on the caller's stack").
//
// A forked task per timeout costs a control block, a stack, two switches and
// a second fiber for the unwinder to walk. When the caller can be interrupted
// right now (interruptible, no exception in flight or being handled, no other
// TimeoutScope open on it), `timeout` instead arms a timer that, at the
// deadline, sets the fiber's kScoped bit and ends its current interruptible
// wait, exactly as an interrupter would. The fiber's next yield point throws
// a ScopeInterrupted, which user code sees as an Interrupted (its finalizers
// run, `catch (Interrupted&)` sees it, it is sticky until the scope ends) and
// which only the timeout frame catches. Everything the forked task gave is
// kept: the task's FiberLocal changes do not leak to the caller, fibers it
// forked are interrupted and awaited before `timeout` returns, a failing
// finalizer is rethrown, a value returned as the deadline passes is kept
// unless the request met a mask (DESIGN 3.10, 3.13). Where the caller cannot
// be interrupted (a masked region, a finalizer, a catch block, a nested
// timeout), `timeout` forks the task as before: the deadline must interrupt
// the task even where it could not interrupt the caller (DESIGN 3.3: a child
// starts interruptible).
#pragma once

#include <weft/cause.hpp>
#include <weft/detail/local_map.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>

namespace weft::detail {

class FiberControl;

class TimeoutScope {
 public:
  // usable() is true when the calling fiber can run a timeout's task on its
  // own stack (see the file comment).
  static bool usable() noexcept;
  // TimeoutScope(d) opens the scope on the calling fiber (usable() must be
  // true) and arms its deadline, now + d (none when that is past the end of
  // the clock). May throw std::bad_alloc (then nothing is open).
  explicit TimeoutScope(std::chrono::nanoseconds d);
  // ~TimeoutScope() ends the scope if finish() did not (an exception that is
  // not the scope's own passes through); failures of the task's finalizers
  // stay recorded on the fiber.
  ~TimeoutScope();
  TimeoutScope(const TimeoutScope&) = delete;
  TimeoutScope& operator=(const TimeoutScope&) = delete;

  // expired() is true when the deadline had passed at entry: the task must
  // not run (a task interrupted before it started never runs, DESIGN 3.2).
  bool expired() const noexcept { return expired_; }

  struct Outcome {
    bool held_off = false;  // the deadline's request met a mask (DESIGN 3.10)
    Cause failures;         // the task's finalizers that failed (empty: none)
  };
  // finish() ends the scope: cancels the timer, interrupts and awaits the
  // fibers forked in it, restores the caller's FiberLocals, clears the
  // scope's bits. With `deadline_ended_task` (the task ended by our
  // ScopeInterrupted, no value), a pending interrupt of the caller itself is
  // thrown now, as Interrupted: "interrupted by my parent" wins over "timed
  // out". Otherwise it returns the outcome.
  Outcome finish(bool deadline_ended_task);
  // caller_interrupting() is true once the caller's own interrupt was
  // delivered in the scope (an exception leaving the task is then that).
  bool caller_interrupting() const noexcept;
  // failure() is the cause of a task that threw `e` (an Interrupted's own
  // cause, as a forked task's Exit), then `finalizers`.
  static Cause failure(std::exception_ptr e, Cause finalizers);

 private:
  static void fire(void* entry) noexcept;
  // end() closes the scope and returns the fiber's interrupt flags as they
  // were (FiberControl::end_timeout_scope).
  std::uint32_t end() noexcept;

  // Bytes of a src-private TimerEntry (static_assert'ed in timeout_scope.cpp).
  static constexpr std::size_t kTimerStorage = 56;
  alignas(8) unsigned char timer_[kTimerStorage];
  FiberControl* fiber_;
  void* heap_ = nullptr;  // the TimerHeap the deadline is armed on, or null
  LocalMap saved_locals_;
  std::size_t failures_at_entry_ = 0;
  bool expired_ = false;
  bool open_ = true;
};

}  // namespace weft::detail
