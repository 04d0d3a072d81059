// RuntimeOptions::interrupt_unwind for a stack scope's fire: a timeout's
// deadline or a race sibling's win, delivered to the task parked on the
// caller's own stack by the unwinder's second phase alone, ends in the
// scope's frame (its catch (...), FiberControl::end_scope_unwind) exactly as
// the thrown ScopeInterrupted would; and every case where it would not
// declines to the throw.
#include "support/unwind_test.hpp"
#include "support/weft_test.hpp"

#include <atomic>
#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include <weft/deferred.hpp>
#include <weft/on_exit.hpp>
#include <weft/race.hpp>
#include <weft/timeout.hpp>

namespace weft {
namespace {

using namespace std::chrono_literals;
using test::EventLog;
using test::has_interruptor;
using test::kForever;
using test::yield_until;

class UnwindScopeTest : public test::UnwindTest {};
WEFT_RUNTIME_TEST_SUITE(UnwindScopeTest);

// A task's frames, a finalizer each, the wait at the bottom.
[[gnu::noinline]] int task(EventLog& log, int depth) {
  OnExit fin([&log, depth] {
    log.add("fin " + std::to_string(depth) + " uncaught " +
            std::to_string(std::uncaught_exceptions()));
  });
  if (depth == 0) {
    this_fiber::sleep_for(kForever);
  } else {
    (void)task(log, depth - 1);
  }
  log.add("unreachable");
  return depth;
}

TEST_P(UnwindScopeTest, test_unwind_scope_timeout_runs_the_task_finalizers_and_returns_nullopt) {
  use_virtual_clock();  // the walk count below is exact
  EventLog log;
  Exit<void> e = run([&] {
    const FiberId me = this_fiber::id();
    std::optional<int> r = timeout(1ms, [&] {
      OnExit fin([&](const Cause& c) {
        log.add("cause by caller " + std::to_string(has_interruptor(c, me)));
      });
      return task(log, 2);
    });
    log.add(r ? "value" : "nullopt");
    log.add("uncaught " + std::to_string(std::uncaught_exceptions()));
    // The caller goes on uninterrupted, and a second timeout works the same.
    this_fiber::check_interrupt();
    std::optional<int> again = timeout(1ms, [&] { return task(log, 0); });
    log.add(again ? "value" : "nullopt");
  });
  ASSERT_TRUE(e.ok()) << e;
  EXPECT_EQ(log.events(),
            (std::vector<std::string>{"fin 0 uncaught 1", "fin 1 uncaught 1", "fin 2 uncaught 1",
                                      "cause by caller 1", "nullopt", "uncaught 0",
                                      "fin 0 uncaught 1", "nullopt"}));
  EXPECT_EQ(unwound(), kWalks ? 2u : 0u);
}

TEST_P(UnwindScopeTest, test_unwind_scope_race_sibling_win_unwinds_contestant_0) {
  EventLog log;
  Exit<int> e = run([&] {
    std::atomic<bool> started0{false};
    const int v = race(
        [&] {
          started0 = true;
          return task(log, 1);
        },
        [&] {
          yield_until([&] { return started0.load(); });  // contestant 0 ran (DESIGN 3.2)
          return 7;
        });
    log.add("race returned");
    return v;
  });
  EXPECT_EQ(e.value(), 7) << e;
  EXPECT_EQ(log.events(),
            (std::vector<std::string>{"fin 0 uncaught 1", "fin 1 uncaught 1", "race returned"}));
  EXPECT_EQ(unwound(), kWalks ? 1u : 0u);
}

TEST_P(UnwindScopeTest, test_unwind_scope_declines_when_the_task_catches_interrupted) {
  EventLog log;
  Exit<void> e = run([&] {
    std::optional<int> r = timeout(1ms, [&] {
      try {
        this_fiber::sleep_for(kForever);
      } catch (const Interrupted&) {
        log.add("caught, uncaught " + std::to_string(std::uncaught_exceptions()));
        throw;
      }
      return 1;
    });
    log.add(r ? "value" : "nullopt");
  });
  ASSERT_TRUE(e.ok()) << e;
  EXPECT_EQ(log.events(), (std::vector<std::string>{"caught, uncaught 0", "nullopt"}));
  EXPECT_EQ(unwound(), 0u);
}

TEST_P(UnwindScopeTest, test_unwind_scope_declines_for_a_catch_all_that_swallows) {
  // The task swallows the fire: its value is kept unless the request met a
  // mask (DESIGN 3.10); here it did not, and the fire is sticky inside the
  // scope, so the next yield point ends the task after all.
  EventLog log;
  Exit<void> e = run([&] {
    std::optional<int> r = timeout(1ms, [&] {
      try {
        this_fiber::sleep_for(kForever);
      } catch (...) {
        log.add("swallowed");
      }
      this_fiber::check_interrupt();
      log.add("unreachable");
      return 1;
    });
    log.add(r ? "value" : "nullopt");
  });
  ASSERT_TRUE(e.ok()) << e;
  EXPECT_EQ(log.events(), (std::vector<std::string>{"swallowed", "nullopt"}));
  EXPECT_EQ(unwound(), 0u);
}

TEST_P(UnwindScopeTest, test_unwind_scope_finalizer_that_waits_resumes_the_unwind) {
  use_virtual_clock();  // the walk count below is exact
  EventLog log;
  Exit<void> e = run([&] {
    Deferred<void> release;
    std::atomic<bool> waiting{false};
    Fiber<void> caller = fork([&] {
      std::optional<int> r = timeout(1ms, [&] {
        OnExit fin([&] {
          waiting = true;
          release.await();  // masked: the unwind goes on after it, maybe elsewhere
          log.add("finalizer resumed, uncaught " + std::to_string(std::uncaught_exceptions()));
        });
        this_fiber::sleep_for(kForever);
        return 1;
      });
      log.add(r ? "value" : "nullopt");
    });
    yield_until([&] { return waiting.load(); });
    (void)release.try_succeed();
    EXPECT_TRUE(caller.await().ok());
  });
  ASSERT_TRUE(e.ok()) << e;
  EXPECT_EQ(log.events(), (std::vector<std::string>{"finalizer resumed, uncaught 1", "nullopt"}));
  EXPECT_EQ(unwound(), kWalks ? 1u : 0u);
}

TEST_P(UnwindScopeTest, test_unwind_scope_caller_interrupt_during_the_task_is_thrown_through) {
  // The fiber's own interrupt is not the scope's: its walk meets the scope's
  // handlers and declines, and the timeout frame lets it pass.
  EventLog log;
  Exit<void> e = run([&] {
    std::atomic<bool> parked{false};
    Fiber<void> caller = fork([&] {
      OnExit outer([&] { log.add("caller finalizer"); });
      (void)timeout(kForever, [&] {
        OnExit fin([&] { log.add("task finalizer"); });
        parked = true;
        this_fiber::sleep_for(kForever);
        return 1;
      });
      log.add("unreachable");
    });
    yield_until([&] { return parked.load(); });
    test::wait_parked(caller);
    EXPECT_TRUE(caller.interrupt().interrupted());
  });
  ASSERT_TRUE(e.ok()) << e;
  EXPECT_EQ(log.events(), (std::vector<std::string>{"task finalizer", "caller finalizer"}));
  EXPECT_EQ(unwound(), 0u);
}

TEST_P(UnwindScopeTest, test_unwind_scope_failing_finalizer_is_the_timeouts_failure) {
  use_virtual_clock();  // the walk count below is exact
  Exit<void> e = run([] {
    (void)timeout(1ms, [] {
      OnExit fin([] { throw test::Boom("finalizer"); });
      this_fiber::sleep_for(kForever);
      return 1;
    });
  });
  ASSERT_TRUE(e.failed()) << e;
  EXPECT_NE(e.cause().failure<test::Boom>(), nullptr) << e;
  EXPECT_EQ(unwound(), kWalks ? 1u : 0u);
}

TEST_P(UnwindScopeTest, test_unwind_scope_many_timeouts_at_once) {
  constexpr int kFibers = 200;
  std::atomic<int> finalized{0}, timed_out{0};
  Exit<void> e = run([&] {
    std::vector<Fiber<void>> fs;
    for (int i = 0; i < kFibers; ++i) {
      fs.push_back(fork([&] {
        auto r = timeout(2ms, [&] {
          OnExit fin([&] { finalized.fetch_add(1); });
          this_fiber::sleep_for(kForever);
          return 0;
        });
        if (!r) timed_out.fetch_add(1);
      }));
    }
    for (auto& f : fs) f.join();
  });
  ASSERT_TRUE(e.ok()) << e;
  EXPECT_EQ(finalized.load(), kFibers);
  EXPECT_EQ(timed_out.load(), kFibers);
  // A deadline that passes before its task parks (the OS stopped the thread
  // for 2 ms between the timeout's start and the sleep: a TSan stage on a
  // loaded machine, 198 of 200) is found at the sleep's entry and thrown,
  // not walked (checked with a task that computes past its deadline: none
  // walked). So: at most one walk per fire, and most of them walked.
  if (kWalks) {
    EXPECT_LE(unwound(), static_cast<std::uint64_t>(kFibers));
    EXPECT_GE(unwound(), static_cast<std::uint64_t>(kFibers / 2));
  } else {
    EXPECT_EQ(unwound(), 0u);
  }
}

}  // namespace
}  // namespace weft
