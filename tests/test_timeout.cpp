// timeout, timeout_exit, timeout_or_throw (DESIGN.md §3.10).
#include <weft/timeout.hpp>

#include "scheduler/scheduler.hpp"
#include "support/timers.hpp"
#include "support/weft_test.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <stdexcept>
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
using test::yield_until;
using Clock = std::chrono::steady_clock;

class TimeoutTest : public RuntimeTest {};
WEFT_RUNTIME_TEST_SUITE(TimeoutTest);

TEST_P(TimeoutTest, test_timeout_fast_task_returns_value) {
  Exit<std::optional<int>> e = run([] { return timeout(kLong, [] { return 5; }); });
  ASSERT_TRUE(e.value().has_value());
  EXPECT_EQ(*e.value(), 5);
}

TEST_P(TimeoutTest, test_timeout_void_task_gives_monostate) {
  Exit<bool> e = run([] {
    std::optional<std::monostate> done = timeout(kLong, [] {});
    std::optional<std::monostate> expired = timeout(1ms, [] { this_fiber::sleep_for(kLong); });
    return done.has_value() && !expired.has_value();
  });
  EXPECT_TRUE(e.value());
}

TEST_P(TimeoutTest, test_timeout_expiry_awaits_finalizers) {
  EventLog log;
  Exit<bool> e = run([&] {
    auto r = timeout(10ms, [&] {
      OnExit fin([&] {
        this_fiber::sleep_for(20ms);  // a slow finalizer: timeout waits for it
        log.add("task finalizer");
      });
      log.add("task started");
      this_fiber::sleep_for(kLong);
      return 1;
    });
    log.add("timeout returned");
    return r.has_value();
  });
  EXPECT_FALSE(e.value());
  // The task may be interrupted before it starts (then nothing ran).
  if (log.index_of("task started") >= 0) {
    EXPECT_EQ(log.events(),
              (std::vector<std::string>{"task started", "task finalizer", "timeout returned"}));
  } else {
    EXPECT_EQ(log.events(), (std::vector<std::string>{"timeout returned"}));
  }
}

TEST_P(TimeoutTest, test_timeout_interrupt_is_attributed_to_caller) {
  std::mutex mu;
  std::vector<FiberId> interruptors;
  std::atomic<bool> started{false};
  FiberId caller;
  Exit<bool> e = run([&] {
    caller = this_fiber::id();
    auto r = timeout(20ms, [&] {
      OnExit fin([&](const Cause& c) {
        std::lock_guard lk(mu);
        interruptors = c.interruptors();
      });
      started = true;
      this_fiber::sleep_for(kLong);
    });
    return r.has_value();
  });
  EXPECT_FALSE(e.value());
  if (started) {
    std::lock_guard lk(mu);
    EXPECT_TRUE(contains(interruptors, caller));
  }
}

TEST_P(TimeoutTest, test_timeout_uninterruptible_task_delays_return) {
  EventLog log;
  Exit<bool> e = run([&] {
    auto r = timeout(5ms, [&] {
      Uninterruptible mask;
      log.add("task started");
      this_fiber::sleep_for(50ms);  // not torn down by the deadline
      log.add("task done");
      return 9;
    });
    log.add("timeout returned");
    return r.has_value();
  });
  // The value of a task that outlived its deadline is discarded.
  EXPECT_FALSE(e.value());
  if (log.index_of("task started") >= 0) {
    EXPECT_EQ(log.events(),
              (std::vector<std::string>{"task started", "task done", "timeout returned"}));
  }
}

// A task that returns its value just as the deadline interrupts it, before
// any yield point delivered the interrupt, keeps the value: the item a
// receive took is not lost (DESIGN 3.12, 3.13). Its body ends with the
// interrupt pending, which alone would discard the value (3.5).
TEST_P(TimeoutTest, test_timeout_keeps_a_value_returned_as_the_deadline_passes) {
  if (workers() == 1) GTEST_SKIP() << "the task spins without a yield point: needs a second worker";
  Exit<void> e = run([] {
    Channel<int> ch(0);
    ch.send(42);
    std::optional<int> r = timeout(5ms, [&] {
      const int v = ch.receive().value();
      // No yield point until the deadline's interrupt has been requested.
      while (!this_fiber::interrupt_requested()) {
      }
      return v;
    });
    ASSERT_TRUE(r.has_value()) << "the received item was discarded";
    EXPECT_EQ(*r, 42);
    EXPECT_EQ(ch.size(), 0u);
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(TimeoutTest, test_timeout_forked_uninterruptible_task_delays_return) {
  EventLog log;
  Exit<bool> e = run([&] {
    auto t0 = Clock::now();
    auto r = timeout(1ms, [&] {
      log.add("task started");
      // Masked from its first instruction: it always runs to the end.
      Fiber<void> inner = fork(
          [&] {
            this_fiber::sleep_for(30ms);
            log.add("inner done");
          },
          {.name = "inner", .uninterruptible = true});
      detail::control(detail::core_of(inner)).await_done_masked();
    });
    log.add("timeout returned");
    const bool started = log.index_of("task started") >= 0;
    return !r.has_value() && (!started || Clock::now() - t0 >= 30ms);
  });
  EXPECT_TRUE(e.value());
  // The inner child was forked only if the task started; either way nothing
  // of the task outlives the timeout.
  const int inner = log.index_of("inner done");
  if (inner >= 0) {
    EXPECT_LT(inner, log.index_of("timeout returned"));
  }
}

TEST_P(TimeoutTest, test_timeout_winning_task_leaves_no_timer) {
  const auto t0 = Clock::now();
  Exit<std::size_t> e = run([] {
    auto r = timeout(kLong, [] {
      this_fiber::yield();
      return 1;
    });
    EXPECT_EQ(r, std::optional<int>(1));
    return pending_timers();
  });
  EXPECT_EQ(e.value(), 0u);
  EXPECT_LT(Clock::now() - t0, 60s);  // the 1 h timer did not keep anything alive
}

TEST_P(TimeoutTest, test_timeout_many_winning_tasks_leave_no_timer) {
  Exit<std::size_t> e = run([] {
    for (int i = 0; i < 200; ++i) timeout(kLong, [i] { return i; });
    return pending_timers();
  });
  EXPECT_EQ(e.value(), 0u);
}

TEST_P(TimeoutTest, test_timeout_caller_interrupted_is_not_a_timeout) {
  EventLog log;
  std::atomic<bool> task_started{false};
  std::atomic<bool> returned{false};
  Exit<bool> e = run([&] {
    Fiber<void> caller = fork([&] {
      auto r = timeout(kLong, [&] {
        OnExit fin([&] { log.add("task finalizer"); });
        task_started = true;
        this_fiber::sleep_for(kLong);
      });
      returned = true;  // never: timeout throws Interrupted
      (void)r;
    });
    yield_until([&] { return task_started.load(); });
    Exit<void> ce = caller.interrupt();
    log.add("caller ended");
    return ce.interrupted() && contains(ce.cause().interruptors(), this_fiber::id());
  });
  EXPECT_TRUE(e.value());
  EXPECT_FALSE(returned.load());
  EXPECT_EQ(log.events(), (std::vector<std::string>{"task finalizer", "caller ended"}));
}

TEST_P(TimeoutTest, test_timeout_task_failure_propagates) {
  Exit<bool> e = run([] {
    bool threw = false;
    try {
      timeout(kLong, []() -> int { throw std::runtime_error("task failed"); });
    } catch (const std::runtime_error& x) {
      threw = std::string(x.what()) == "task failed";
    }
    Exit<std::optional<int>> ex =
        timeout_exit(kLong, []() -> int { throw std::runtime_error("again"); });
    return threw && ex.failed() && ex.cause().failure<std::runtime_error>() != nullptr;
  });
  EXPECT_TRUE(e.value());
}

TEST_P(TimeoutTest, test_timeout_exit_reports_expiry_as_empty_success) {
  Exit<bool> e = run([] {
    Exit<std::optional<int>> x = timeout_exit(1ms, [] {
      this_fiber::sleep_for(kLong);
      return 1;
    });
    Exit<std::optional<int>> y = timeout_exit(kLong, [] { return 2; });
    return x.ok() && !x.value().has_value() && y.ok() && y.value() == 2;
  });
  EXPECT_TRUE(e.value());
}

TEST_P(TimeoutTest, test_timeout_failure_while_unwinding_is_not_lost) {
  Exit<bool> e = run([] {
    std::atomic<bool> started{false};
    try {
      timeout(10ms, [&] {
        OnExit fin([] { throw std::runtime_error("finalizer failed"); });
        started = true;
        this_fiber::sleep_for(kLong);
      });
    } catch (const std::runtime_error& x) {
      return std::string(x.what()) == "finalizer failed";
    }
    return !started.load();  // interrupted before it started: nothing to lose
  });
  EXPECT_TRUE(e.value());
}

TEST_P(TimeoutTest, test_timeout_zero_or_negative_duration_interrupts_at_once) {
  std::atomic<int> ran{0};
  Exit<bool> e = run([&] {
    auto a = timeout(0ns, [&] {
      ++ran;
      this_fiber::sleep_for(kLong);
      return 1;
    });
    auto b = timeout(-5s, [&] {
      ++ran;
      this_fiber::sleep_for(kLong);
      return 2;
    });
    return !a.has_value() && !b.has_value();
  });
  EXPECT_TRUE(e.value());
  if (workers() == 1) {
    EXPECT_EQ(ran.load(), 0);  // interrupted before it could start
  }
}

TEST_P(TimeoutTest, test_timeout_or_throw) {
  Exit<bool> e = run([] {
    int v = timeout_or_throw(kLong, [] { return 4; });
    bool threw = false;
    try {
      timeout_or_throw(1ms, [] {
        this_fiber::sleep_for(kLong);
        return 1;
      });
    } catch (const TimedOut& t) {
      threw = std::string(t.what()).find("deadline") != std::string::npos;
    }
    timeout_or_throw(kLong, [] {});  // void
    return v == 4 && threw;
  });
  EXPECT_TRUE(e.value());
}

TEST_P(TimeoutTest, test_timeout_move_only_value) {
  Exit<int> e = run([] {
    std::optional<std::unique_ptr<int>> p = timeout(kLong, [] { return std::make_unique<int>(8); });
    return **p;
  });
  EXPECT_EQ(e.value(), 8);
}

TEST_P(TimeoutTest, test_timeout_masked_caller_still_times_out) {
  Exit<bool> e = run([] {
    Uninterruptible mask;
    auto r = timeout(5ms, [] {
      this_fiber::sleep_for(kLong);
      return 1;
    });
    return !r.has_value();
  });
  EXPECT_TRUE(e.value());
}

// disconnect() leaves a daemon behind, so this test owns its runtime: its
// destructor interrupts the daemon (the fixture checks for leaked roots).
TEST_P(TimeoutTest, test_timeout_around_disconnect_returns_at_deadline) {
  std::atomic<bool> background_started{false};
  Runtime local({.workers = workers()});
  const auto t0 = Clock::now();
  Exit<bool> e = local.block_on([&] {
    auto r = timeout(30ms, [&] {
      return disconnect([&] {
        background_started = true;
        this_fiber::sleep_for(kLong);
        return 1;
      });
    });
    return r.has_value();
  });
  EXPECT_FALSE(e.value());
  EXPECT_LT(Clock::now() - t0, 30s);  // the deadline, not the background work
}

TEST_P(TimeoutTest, test_timeout_nested) {
  Exit<bool> e = run([] {
    auto outer = timeout(kLong, [] {
      auto inner = timeout(5ms, [] {
        this_fiber::sleep_for(kLong);
        return 1;
      });
      return inner.has_value() ? 1 : 2;
    });
    return outer == 2;
  });
  EXPECT_TRUE(e.value());
}

}  // namespace
}  // namespace weft
