// DESIGN 3.4, 3.7: finalizers (RAII, OnExit, acquire_release) on interrupt,
// failure and success; sticky interruption; finalizer failures in the cause.
#include "support/weft_test.hpp"

#include <atomic>
#include <stdexcept>

namespace weft {
namespace {

using test::EventLog;
using test::kForever;
using test::wait_parked;

class FinalizerTest : public test::RuntimeTest {};
WEFT_RUNTIME_TEST_SUITE(FinalizerTest);

struct Guard {
  EventLog* log;
  std::string name;
  ~Guard() { log->add("dtor " + name); }
};

TEST_P(FinalizerTest, test_finalizers_run_lifo_on_interrupt) {
  EventLog log;
  Exit<void> e = run([&] {
    Fiber<void> f = fork([&] {
      Guard a{&log, "a"};
      OnExit b([&] { log.add("onexit b"); });
      Guard c{&log, "c"};
      OnExit d([&](const Cause& cause) {
        log.add(cause.interrupted_only() ? "onexit d interrupted" : "onexit d other");
      });
      this_fiber::sleep_for(kForever);
    });
    wait_parked(f);
    EXPECT_TRUE(f.interrupt().interrupted());
    log.add("interrupt returned");
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(log.events(), (std::vector<std::string>{"onexit d interrupted", "dtor c", "onexit b",
                                                    "dtor a", "interrupt returned"}));
}

TEST_P(FinalizerTest, test_finalizers_see_empty_cause_on_success) {
  EventLog log;
  Exit<int> e = run([&] {
    OnExit fin([&](const Cause& c) { log.add(c.empty() ? "empty" : "non-empty"); });
    return 1;
  });
  EXPECT_TRUE(e.ok());
  EXPECT_EQ(log.events(), std::vector<std::string>{"empty"});
}

TEST_P(FinalizerTest, test_finalizers_may_suspend_while_unwinding) {
  EventLog log;
  Exit<void> e = run([&] {
    Fiber<void> f = fork([&] {
      OnExit fin([&] {
        EXPECT_FALSE(this_fiber::interruptible());
        this_fiber::sleep_for(std::chrono::milliseconds(2));
        this_fiber::yield();
        Fiber<int> helper = fork([] { return 4; });
        log.add("awaited " + std::to_string(helper.join()) + " in finalizer");
      });
      struct Dtor {
        EventLog* log;
        ~Dtor() {
          EXPECT_FALSE(this_fiber::interruptible());  // unwinding
          this_fiber::yield();
          log->add("dtor yielded while unwinding");
        }
      } d{&log};
      this_fiber::sleep_for(kForever);
    });
    wait_parked(f);
    EXPECT_TRUE(f.interrupt().interrupted());
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(log.events(),
            (std::vector<std::string>{"dtor yielded while unwinding", "awaited 4 in finalizer"}));
}

TEST_P(FinalizerTest, test_finalizers_catch_block_may_suspend) {
  EventLog log;
  Exit<void> e = run([&] {
    Fiber<void> f = fork([&] {
      try {
        this_fiber::sleep_for(kForever);
      } catch (const Interrupted&) {
        EXPECT_FALSE(this_fiber::interruptible());  // being handled
        this_fiber::sleep_for(std::chrono::milliseconds(1));
        log.add("catch block slept");
        throw;
      }
    });
    wait_parked(f);
    EXPECT_TRUE(f.interrupt().interrupted());
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(log.events(), std::vector<std::string>{"catch block slept"});
}

TEST_P(FinalizerTest, test_finalizers_swallowed_interrupt_is_sticky) {
  EventLog log;
  Exit<void> e = run([&] {
    Fiber<int> f = fork([&] {
      try {
        this_fiber::sleep_for(kForever);
      } catch (...) {
        log.add("swallowed");
      }
      try {
        this_fiber::yield();
      } catch (const Interrupted&) {
        log.add("again at next yield point");
      }
      return 1;  // even swallowed twice, the fiber ends interrupted
    });
    wait_parked(f);
    Exit<int> fe = f.interrupt();
    EXPECT_TRUE(fe.interrupted());
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(log.events(), (std::vector<std::string>{"swallowed", "again at next yield point"}));
}

TEST_P(FinalizerTest, test_finalizers_failure_while_unwinding_is_added_to_cause) {
  Exit<void> e = run([&] {
    Fiber<void> f = fork([&] {
      OnExit fin([] { throw std::logic_error("cleanup failed"); });
      this_fiber::sleep_for(kForever);
    });
    wait_parked(f);
    Exit<void> fe = f.interrupt();
    // Not std::terminate: the interruption and the finalizer's failure.
    EXPECT_TRUE(fe.failed());
    EXPECT_FALSE(fe.cause().interruptors().empty());
    ASSERT_NE(fe.cause().failure<std::logic_error>(), nullptr);
    EXPECT_STREQ(fe.cause().failure<std::logic_error>()->what(), "cleanup failed");
    EXPECT_NE(fe.cause().pretty().find("in finalizer"), std::string::npos);
  });
  EXPECT_TRUE(e.ok());
}

TEST_P(FinalizerTest, test_finalizers_failure_after_failure_keeps_both_in_order) {
  Exit<void> e = run([] {
    OnExit fin([] { throw std::logic_error("second"); });
    throw std::runtime_error("first");
  });
  ASSERT_TRUE(e.failed());
  auto failures = e.cause().failures();
  ASSERT_EQ(failures.size(), 2u);
  EXPECT_NE(e.cause().failure<std::runtime_error>(), nullptr);
  EXPECT_NE(e.cause().failure<std::logic_error>(), nullptr);
  // Two failures: value() throws CauseError holding both.
  try {
    e.value();
    FAIL();
  } catch (const CauseError& ce) {
    EXPECT_EQ(ce.cause().failures().size(), 2u);
  }
}

TEST_P(FinalizerTest, test_finalizers_success_then_failing_finalizer_is_failure) {
  Exit<int> e = run([] {
    OnExit fin([] { throw std::runtime_error("finalizer"); });
    return 1;
  });
  EXPECT_TRUE(e.failed());
  EXPECT_THROW(e.value(), std::runtime_error);
}

TEST_P(FinalizerTest, test_acquire_release_runs_release_once_on_every_outcome) {
  std::atomic<int> released{0};
  Exit<int> ok = run([&] {
    return acquire_release([] { return 5; }, [](int r) { return r * 2; }, [&](int) { ++released; });
  });
  EXPECT_EQ(ok.value(), 10);
  Exit<int> failed = run([&] {
    return acquire_release([] { return 5; },
                           [](int) -> int { throw std::runtime_error("use failed"); },
                           [&](int, const Cause& c) {
                             EXPECT_TRUE(c.has_failure());
                             ++released;
                           });
  });
  EXPECT_TRUE(failed.failed());
  EXPECT_EQ(released.load(), 2);
}

// release(r, cause) runs in the handler of use's exception, so its cause
// holds that exception itself, which then propagates unchanged.
TEST_P(FinalizerTest, test_acquire_release_release_sees_the_exception_itself) {
  EventLog log;
  Exit<int> e = run([&] {
    return acquire_release([] { return 5; },
                           [](int) -> int { throw std::runtime_error("use failed"); },
                           [&](int, const Cause& c) {
                             const auto* error = c.failure<std::runtime_error>();
                             log.add(error != nullptr ? error->what() : "not the exception");
                             log.add(c.failure<InFlightException>() ? "marker" : "no marker");
                           });
  });
  EXPECT_EQ(log.events(), (std::vector<std::string>{"use failed", "no marker"}));
  ASSERT_TRUE(e.failed());
  ASSERT_NE(e.cause().failure<std::runtime_error>(), nullptr);
  EXPECT_STREQ(e.cause().failure<std::runtime_error>()->what(), "use failed");
}

// A release that throws after use failed is added after the original.
TEST_P(FinalizerTest, test_acquire_release_failing_release_after_failure_is_kept) {
  Exit<void> e = run([&] {
    acquire_release([] { return 1; }, [](int) { throw std::runtime_error("use failed"); },
                    [](int, const Cause&) { throw std::logic_error("release failed"); });
  });
  ASSERT_TRUE(e.failed());
  ASSERT_EQ(e.cause().failures().size(), 2u);
  EXPECT_STREQ(e.cause().failure<std::runtime_error>()->what(), "use failed");
  EXPECT_STREQ(e.cause().failure<std::logic_error>()->what(), "release failed");
}

// An OnExit cannot reach the propagating exception (on_exit.hpp says why):
// its cause holds the InFlightException marker, never another exception,
// even inside a catch block whose caught exception a destructor would see
// through std::current_exception().
TEST_P(FinalizerTest, test_finalizers_onexit_sees_in_flight_marker) {
  EventLog log;
  auto describe = [&](const Cause& c) {
    if (c.failure<std::runtime_error>() != nullptr) return "runtime_error";
    if (c.failure<std::logic_error>() != nullptr) return "logic_error";
    if (c.failure<InFlightException>() != nullptr) return "marker";
    return "other";
  };
  Exit<void> e = run([&] {
    try {
      OnExit fin([&](const Cause& c) { log.add(describe(c)); });
      throw std::runtime_error("body");
    } catch (const std::runtime_error&) {
      try {
        OnExit fin([&](const Cause& c) { log.add(describe(c)); });
        throw std::logic_error("inside a handler");
      } catch (const std::logic_error&) {
      }
    }
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(log.events(), (std::vector<std::string>{"marker", "marker"}));
}

TEST_P(FinalizerTest, test_acquire_release_interrupt_during_acquire_skips_use) {
  EventLog log;
  Exit<void> e = run([&] {
    std::atomic<bool> acquiring{false};
    Fiber<void> f = fork([&] {
      acquire_release(
          [&] {
            acquiring = true;
            EXPECT_FALSE(this_fiber::interruptible());
            while (!this_fiber::interrupt_requested()) this_fiber::yield();
            this_fiber::sleep_for(std::chrono::milliseconds(1));  // masked: completes
            log.add("acquired");
            return 1;
          },
          [&](int) { log.add("use entered"); },
          [&](int, const Cause& c) {
            log.add(c.interrupted_only() ? "released after interrupt" : "released");
          });
    });
    while (!acquiring) this_fiber::yield();
    EXPECT_TRUE(f.interrupt().interrupted());
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(log.events(), (std::vector<std::string>{"acquired", "released after interrupt"}));
}

TEST_P(FinalizerTest, test_acquire_release_use_is_interruptible) {
  EventLog log;
  Exit<void> e = run([&] {
    Fiber<void> f = fork([&] {
      acquire_release([] { return 1; },
                      [&](int) {
                        log.add("use");
                        this_fiber::sleep_for(kForever);
                      },
                      [&](int) { log.add("release"); });
    });
    wait_parked(f);
    EXPECT_TRUE(f.interrupt().interrupted());
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(log.events(), (std::vector<std::string>{"use", "release"}));
}

TEST_P(FinalizerTest, test_finalizers_captures_are_destroyed_at_fiber_end) {
  std::atomic<int> destroyed{0};
  struct Capture {
    std::atomic<int>* n;
    Capture(std::atomic<int>* p) : n(p) {}
    Capture(const Capture& o) : n(o.n) {}
    ~Capture() { ++*n; }
  };
  Exit<void> e = run([&] {
    std::atomic<int> before{0};
    {
      Capture c(&destroyed);
      Fiber<void> f = fork([c] { this_fiber::sleep_for(kForever); });
      wait_parked(f);
      before = destroyed.load();
      EXPECT_TRUE(f.interrupt().interrupted());
    }
    // the fiber's copy was destroyed when the fiber ended
    EXPECT_GE(destroyed.load(), before.load() + 2);
  });
  EXPECT_TRUE(e.ok());
}

}  // namespace
}  // namespace weft
