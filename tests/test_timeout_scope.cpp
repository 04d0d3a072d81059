// timeout on the caller's own stack (include/weft/detail/timeout_scope.hpp):
// the task runs in the caller's fiber when the caller can be interrupted,
// and keeps every promise a forked task gave (DESIGN 3.2-3.5, 3.10, 3.13).
#include <weft/weft.hpp>

#include "scheduler/scheduler.hpp"
#include "support/timers.hpp"
#include "support/weft_test.hpp"

#include <atomic>
#include <chrono>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

namespace weft {
namespace {

using namespace std::chrono_literals;
using test::contains;
using test::EventLog;
using test::kLong;
using test::pending_timers;
using test::RuntimeTest;
using test::wait_parked;
using test::yield_until;

class TimeoutScopeTest : public RuntimeTest {};
WEFT_RUNTIME_TEST_SUITE(TimeoutScopeTest);

TEST_P(TimeoutScopeTest, test_timeout_task_runs_on_the_callers_own_fiber) {
  Exit<bool> e = run([] {
    const FiberId caller = this_fiber::id();
    FiberId won, lost;
    auto a = timeout(kLong, [&] { return (won = this_fiber::id(), 1); });
    auto b = timeout(1ms, [&] {
      lost = this_fiber::id();
      this_fiber::sleep_for(kLong);
    });
    return a == 1 && !b && won == caller && lost == caller && pending_timers() == 0;
  });
  EXPECT_TRUE(e.value()) << e;
}

TEST_P(TimeoutScopeTest, test_timeout_where_the_caller_is_masked_forks_the_task) {
  Exit<bool> e = run([] {
    const FiberId caller = this_fiber::id();
    Uninterruptible mask;
    FiberId task;
    auto r = timeout(1ms, [&] {
      task = this_fiber::id();
      this_fiber::sleep_for(kLong);  // interruptible: a child starts so (3.3)
    });
    return !r && task != caller;
  });
  EXPECT_TRUE(e.value()) << e;
}

TEST_P(TimeoutScopeTest, test_timeout_inside_a_finalizer_still_fires) {
  std::atomic<bool> fired{false};
  Exit<void> e = run([&] {
    Fiber<void> f = fork([&] {
      OnExit fin([&] {
        // Unwinding an interrupt: the caller cannot be interrupted here, so
        // the task gets a fiber, and its deadline still ends it.
        fired = !timeout(2ms, [] { this_fiber::sleep_for(kLong); }).has_value();
      });
      this_fiber::sleep_for(kLong);
    });
    wait_parked(f);
    (void)f.interrupt();
  });
  EXPECT_TRUE(e.ok()) << e;
  EXPECT_TRUE(fired.load());
}

TEST_P(TimeoutScopeTest, test_timeout_nested_outer_deadline_ends_the_inner_task) {
  EventLog log;
  std::atomic<bool> inner_started{false};
  Exit<bool> e = run([&] {
    auto outer = timeout(20ms, [&] {
      auto inner = timeout(kLong, [&] {
        inner_started = true;
        OnExit fin([&] { log.add("inner finalizer"); });
        this_fiber::sleep_for(kLong);
        return 1;
      });
      log.add("inner returned");  // never: the outer deadline unwinds past it
      return inner.value_or(0);
    });
    log.add("outer returned");
    return !outer.has_value() && pending_timers() == 0;
  });
  EXPECT_TRUE(e.value()) << e;
  // The outer deadline can pass before the inner task starts (a fresh
  // clone's ASan stage on a loaded machine passed 5 ms there): then the
  // inner task never runs (DESIGN 3.2) and has no finalizer. Both are
  // checked; the first is the common case.
  if (inner_started.load())
    EXPECT_EQ(log.events(), (std::vector<std::string>{"inner finalizer", "outer returned"}));
  else
    EXPECT_EQ(log.events(), (std::vector<std::string>{"outer returned"}));
}

TEST_P(TimeoutScopeTest, test_timeout_nested_inner_deadline_returns_to_the_outer_task) {
  Exit<std::optional<int>> e = run([] {
    return timeout(kLong, [] {
      auto inner = timeout(1ms, [] {
        this_fiber::sleep_for(kLong);
        return 1;
      });
      this_fiber::yield();  // the outer task goes on, interruptible
      return inner.has_value() ? -1 : 7;
    });
  });
  EXPECT_EQ(e.value(), std::optional<int>(7));
}

TEST_P(TimeoutScopeTest, test_timeout_deadline_is_an_interrupted_attributed_to_the_caller) {
  Exit<bool> e = run([] {
    const FiberId caller = this_fiber::id();
    bool seen = false;
    auto r = timeout(1ms, [&] {
      try {
        this_fiber::sleep_for(kLong);
      } catch (const Interrupted& x) {
        seen = contains(x.cause().interruptors(), caller);
        throw;
      }
    });
    return !r && seen;
  });
  EXPECT_TRUE(e.value()) << e;
}

// Sticky (3.4): a task that swallows its deadline gets it again at its next
// interruptible yield point.
TEST_P(TimeoutScopeTest, test_timeout_task_that_swallows_the_deadline_gets_it_again) {
  Exit<bool> e = run([] {
    int caught = 0;
    auto r = timeout(1ms, [&] {
      try {
        this_fiber::sleep_for(kLong);
      } catch (...) {
        ++caught;
      }
      this_fiber::sleep_for(kLong);  // throws again at once
      return 1;
    });
    // The scope ended with the timeout: the caller is not interrupted.
    this_fiber::yield();
    return !r && caught == 1 && !this_fiber::interrupt_requested();
  });
  EXPECT_TRUE(e.value()) << e;
}

// A masked section of the task delays the deadline; a value returned after
// the request met the mask is discarded (3.10), as a forked task's was.
TEST_P(TimeoutScopeTest, test_timeout_masked_section_of_the_task_delays_and_discards) {
  Exit<bool> e = run([] {
    bool finished = false;
    auto r = timeout(1ms, [&] {
      {
        Uninterruptible mask;
        yield_until([] { return this_fiber::interrupt_requested(); });
        finished = true;
      }
      return 5;
    });
    return !r && finished;
  });
  EXPECT_TRUE(e.value()) << e;
}

TEST_P(TimeoutScopeTest, test_timeout_task_stop_token_is_stopped_by_the_deadline_only) {
  Exit<bool> e = run([] {
    std::stop_token outside = this_fiber::stop_token();
    std::stop_token inside;
    auto r = timeout(1ms, [&] {
      inside = this_fiber::stop_token();
      // No yield point: code that only sees the token (the monitor fires
      // the deadline of a busy worker, DESIGN 3.14).
      while (!inside.stop_requested()) {
      }
      this_fiber::check_interrupt();
      return 1;
    });
    return !r && inside.stop_requested() && !outside.stop_requested() &&
           !this_fiber::stop_token().stop_requested();
  });
  EXPECT_TRUE(e.value()) << e;
}

TEST_P(TimeoutScopeTest, test_timeout_fibers_forked_by_the_task_end_with_it) {
  EventLog log;
  Exit<bool> e = run([&] {
    auto won = timeout(kLong, [&] {
      Fiber<void> c = fork([&] {
        OnExit fin([&] { log.add("child of the winner ended"); });
        this_fiber::sleep_for(kLong);
      });
      wait_parked(c);  // started: its finalizer runs when the scope ends it
      return 1;        // the handle is dropped; the child is still running
    });
    log.add("winner returned");
    auto lost = timeout(2ms, [&] {
      Fiber<void> c = fork([&] {
        OnExit fin([&] { log.add("child of the loser ended"); });
        this_fiber::sleep_for(kLong);
      });
      {
        // The deadline is held off until the child has started: a child the
        // scope ends before it ran never runs its body (DESIGN 3.2), and on a
        // loaded machine 2 ms can pass before a worker picks it up.
        Uninterruptible mask;
        wait_parked(c);
      }
      (void)c.await();
    });
    log.add("loser returned");
    return won == 1 && !lost;
  });
  EXPECT_TRUE(e.value()) << e;
  EXPECT_EQ(log.events(), (std::vector<std::string>{"child of the winner ended", "winner returned",
                                                    "child of the loser ended", "loser returned"}));
}

TEST_P(TimeoutScopeTest, test_timeout_task_fiber_local_changes_end_with_it) {
  static FiberLocal<int> local(0);
  Exit<bool> e = run([] {
    local.set(1);
    int seen = 0;
    auto r = timeout(kLong, [&] {
      seen = local.get();
      local.set(2);
      return local.get();
    });
    return seen == 1 && r == 2 && local.get() == 1;
  });
  EXPECT_TRUE(e.value()) << e;
}

TEST_P(TimeoutScopeTest, test_timeout_expired_duration_never_runs_the_task) {
  std::atomic<int> ran{0};
  Exit<bool> e = run([&] {
    auto a = timeout(0ns, [&] { return ++ran; });
    auto b = timeout(-1s, [&] { return ++ran; });
    return !a && !b;
  });
  EXPECT_TRUE(e.value()) << e;
  EXPECT_EQ(ran.load(), 0);
}

// The caller's own interrupt passes the timeout frame: it ends the caller,
// and the scope's timer is gone.
TEST_P(TimeoutScopeTest, test_timeout_callers_interrupt_passes_the_scope) {
  std::atomic<bool> returned{false};
  Exit<bool> e = run([&] {
    Fiber<void> caller = fork([&] {
      (void)timeout(kLong, [] { this_fiber::sleep_for(kLong); });
      returned = true;
    });
    wait_parked(caller);
    Exit<void> x = caller.interrupt();
    return x.interrupted() && contains(x.cause().interruptors(), this_fiber::id()) &&
           pending_timers() == 0;
  });
  EXPECT_TRUE(e.value()) << e;
  EXPECT_FALSE(returned.load());
}

// The caller's interrupt passes the timeout frame and the caller swallows
// it: the scope is closed all the same (its FiberLocals restored, no scope
// left open), so a later timeout in a masked region forks its task and its
// deadline still fires.
TEST_P(TimeoutScopeTest, test_timeout_scope_closes_when_the_callers_interrupt_passes) {
  static FiberLocal<int> local(0);
  std::atomic<bool> restored{false};
  std::atomic<bool> later_fired{false};
  Exit<void> e = run([&] {
    Fiber<void> caller = fork([&] {
      local.set(1);
      try {
        (void)timeout(kLong, [] {
          local.set(2);
          this_fiber::sleep_for(kLong);
        });
      } catch (const Interrupted&) {
        // swallowed: still pending, delivered again at the next yield point
      }
      restored = local.get() == 1;
      Uninterruptible mask;
      FiberId task;
      const auto r = timeout(1ms, [&] {
        task = this_fiber::id();
        this_fiber::sleep_for(kLong);
      });
      later_fired = !r.has_value() && task != this_fiber::id();
    });
    wait_parked(caller);
    EXPECT_TRUE(caller.interrupt().interrupted());
  });
  EXPECT_TRUE(e.ok()) << e;
  EXPECT_TRUE(restored.load());
  EXPECT_TRUE(later_fired.load());
}

// Interrupt vs. deadline: the caller is interrupted while its task unwinds
// from the deadline. "Interrupted by my parent" wins: timeout throws.
TEST_P(TimeoutScopeTest, test_timeout_caller_interrupted_while_the_task_unwinds) {
  std::atomic<bool> unwinding{false};
  std::atomic<bool> returned{false};
  Latch gate(1);
  Exit<bool> e = run([&] {
    Fiber<void> caller = fork([&] {
      (void)timeout(1ms, [&] {
        OnExit fin([&] {
          unwinding = true;
          gate.wait();  // a finalizer: masked
        });
        this_fiber::sleep_for(kLong);
      });
      returned = true;
    });
    yield_until([&] { return unwinding.load(); });
    caller.interrupt_fork();
    gate.count_down();
    Exit<void> x = caller.await();
    return x.interrupted();
  });
  EXPECT_TRUE(e.value()) << e;
  EXPECT_FALSE(returned.load());
}

}  // namespace
}  // namespace weft
