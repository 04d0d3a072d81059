// StackScope, TimeoutScope, RaceScope: a task run on the caller's own stack
// (weft issue 15; docs/internals.md "Timeouts on the caller's stack" and
// "Race contestant 0 on the racer's stack"). What follows is told for a
// timeout; a RaceScope is the same, fired by a sibling contestant's win
// instead of a timer.
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
#include <weft/detail/spin_lock.hpp>
#include <weft/interrupted.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>

namespace weft::detail {

class FiberControl;

// ScopeMark is never thrown. The scope's frame catches `const
// ScopeInterrupted&`, then `const ScopeMark&`, then `...`: a handler chain
// no other code has, so the walk of RuntimeOptions::interrupt_unwind knows
// the scope's own try, whatever frame it is inlined into
// (src/unwind/frame_rule.hpp). Its catch (...) asks end_own_unwind() first.
struct ScopeMark {};

// StackScope is what TimeoutScope and RaceScope share: a task run on the
// caller's own stack that something else may end (fire()) the way an
// interrupter would, from any thread. The subclass says what fires it (a
// timer, a sibling contestant's win) and how to stop that before the scope
// closes (its `disarm` hook: after it returns nothing fires any more).
class StackScope {
 public:
  // usable() is true when the calling fiber can run a task on its own
  // stack (see the file comment).
  static bool usable() noexcept;
  StackScope(const StackScope&) = delete;
  StackScope& operator=(const StackScope&) = delete;

  struct Outcome {
    bool held_off = false;  // the fire met a mask (DESIGN 3.10)
    bool fired = false;     // the scope was fired before it closed
    Cause failures;         // the task's finalizers that failed (empty: none)
  };
  // finish() ends the scope: disarms what fires it, interrupts and awaits
  // the fibers forked in it, restores the caller's FiberLocals, clears the
  // scope's bits. With `fire_ended_task` (the task ended by our
  // ScopeInterrupted, no value), a pending interrupt of the caller itself is
  // thrown now, as Interrupted: "interrupted by my parent" wins over "timed
  // out". Otherwise it returns the outcome.
  Outcome finish(bool fire_ended_task);
  // caller_interrupting() is true once the caller's own interrupt was
  // delivered in the scope (an exception leaving the task is then that).
  bool caller_interrupting() const noexcept;
  // end_own_unwind() is the scope frame's catch (...)'s first question: true
  // when the exception is the scope's fire delivered by the unwinder's
  // phase 2 alone (RuntimeOptions::interrupt_unwind: a foreign exception,
  // which nothing else may inspect), then ended; the task ended by the fire.
  bool end_own_unwind() noexcept;
  // failure() is the cause of a task that threw `e` (an Interrupted's own
  // cause, as a forked task's Exit), then `finalizers`.
  static Cause failure(std::exception_ptr e, Cause finalizers);
  // interrupted_cause() is the cause of a task the fire ended before it
  // ran (an interrupt attributed to the caller, as a forked task's).
  Cause interrupted_cause() const;

 protected:
  using Disarm = void (*)(StackScope& self) noexcept;
  // StackScope(disarm) binds the scope to the calling fiber; open() opens it.
  explicit StackScope(Disarm disarm) noexcept;
  ~StackScope() = default;
  // open() opens the scope on the fiber (usable() was true).
  void open() noexcept;
  // fire() ends the task's current interruptible wait and makes its next
  // yield point throw ScopeInterrupted (any thread; only while open, and
  // never after `disarm` returned).
  void fire() noexcept;
  // close_if_open() ends the scope if finish() did not (an exception that is
  // not the scope's own passes through); the subclass's destructor calls it
  // while the subclass's members still live.
  void close_if_open() noexcept {
    if (open_) (void)end();
  }

 private:
  // end() closes the scope and returns the fiber's interrupt flags as they
  // were (FiberControl::end_timeout_scope).
  std::uint32_t end() noexcept;

  FiberControl* fiber_;
  Disarm disarm_;
  LocalMap saved_locals_;
  std::size_t failures_at_entry_ = 0;
  bool open_ = false;
};

class TimeoutScope : public StackScope {
 public:
  // TimeoutScope(d) opens the scope on the calling fiber (usable() must be
  // true) and arms its deadline, now + d (none when that is past the end of
  // the clock). May throw std::bad_alloc (then nothing is open).
  explicit TimeoutScope(std::chrono::nanoseconds d);
  // ~TimeoutScope() ends the scope if finish() did not (an exception that is
  // not the scope's own passes through); failures of the task's finalizers
  // stay recorded on the fiber.
  ~TimeoutScope();

  // expired() is true when the deadline had passed at entry: the task must
  // not run (a task interrupted before it started never runs, DESIGN 3.2).
  bool expired() const noexcept { return expired_; }

 private:
  static void cancel_timer(StackScope& self) noexcept;

  // Bytes of a src-private TimerEntry (static_assert'ed in timeout_scope.cpp).
  static constexpr std::size_t kTimerStorage = 56;
  alignas(8) unsigned char timer_[kTimerStorage];
  void* heap_ = nullptr;  // the TimerHeap the deadline is armed on, or null
  bool expired_ = false;
};

// RaceScope: contestant 0 of a race run on the racer's own stack while the
// others are forked (include/weft/race.hpp). A forked contestant whose end
// decides the race (a success; any end for race_first) fires the scope from
// its own thread, under the scope's lock; the racer disarms under the same
// lock when contestant 0 has ended, so no sibling fires after that (the
// TimerHeap::cancel rule, a fire in progress finishes first). A sibling that
// decides before the scope opens is recorded and contestant 0 never runs.
class RaceScope : public StackScope {
 public:
  static constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();
  // RaceScope(first_completion) prepares the scope on the calling fiber
  // (usable() must be true); nothing is open until open().
  explicit RaceScope(bool first_completion) noexcept;
  // ~RaceScope() ends the scope if finish() did not.
  ~RaceScope();

  // open() opens the scope; false when a sibling had already decided the
  // race (contestant 0 must not run, DESIGN 3.2; nothing is open then).
  bool open() noexcept;
  // sibling_ended() is called by forked contestant `slot` as its body ends
  // (its thread): `succeeded` when it returned. It fires the scope when that
  // decides the race and no one decided before.
  void sibling_ended(std::size_t slot, bool succeeded) noexcept;
  // decided_by() is the sibling that fired (or decided before open()), npos
  // for none; read by the racer once the scope closed.
  std::size_t decided_by() const noexcept { return decided_by_; }

 private:
  static void disarm(StackScope& self) noexcept;

  enum class State : unsigned char { unopened, armed, decided, closed };
  SpinLock lock_;
  State state_ WEFT_GUARDED_BY(lock_) = State::unopened;
  std::size_t decided_by_ = npos;  // written under lock_ before closed
  bool first_completion_;
};

// How a task run under a stack scope ended (run_in_scope()).
enum class ScopeEnd : unsigned char {
  returned,  // the task returned
  fired,     // the scope's fire ended it (a deadline, a sibling's win)
  failed,    // it threw something else: `error`
};

// run_in_scope() runs task() under `scope` (opened) and says how it ended.
// This try is the one the interrupt_unwind walk looks for: its handler
// chain (ScopeInterrupted, ScopeMark, ...) is what the walk asks of the
// first frame with a handler above a scope's task, inlined here or not.
// The caller's own interrupt passes through (rethrown), as does nothing
// else: any other exception is the task's failure, returned in `error`.
template <class Task>
ScopeEnd run_in_scope(StackScope& scope, Task&& task, std::exception_ptr& error) {
  try {
    task();
    return ScopeEnd::returned;
  } catch (const ScopeInterrupted&) {
    return ScopeEnd::fired;     // ours: the only scope open on this fiber
  } catch (const ScopeMark&) {  // never thrown: marks this chain (above)
    return ScopeEnd::fired;
  } catch (...) {
    if (scope.end_own_unwind()) return ScopeEnd::fired;  // ours, by phase 2 alone
    if (scope.caller_interrupting()) throw;
    error = std::current_exception();
    return ScopeEnd::failed;
  }
}

}  // namespace weft::detail
