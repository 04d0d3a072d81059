// DESIGN 3.1, 3.2, 3.8: delivery of interrupts, not-started fibers, back-pressure.
#include "support/scale.hpp"
#include "support/weft_test.hpp"

#include <algorithm>
#include <atomic>
#include <thread>

namespace weft {
namespace {

using test::EventLog;
using test::kForever;
using test::wait_parked;

class DeliveryTest : public test::RuntimeTest {};
WEFT_RUNTIME_TEST_SUITE(DeliveryTest);

bool has_interruptor(const Cause& c, FiberId id) {
  auto v = c.interruptors();
  return std::find(v.begin(), v.end(), id) != v.end();
}

TEST_P(DeliveryTest, test_interrupt_parked_fiber_throws_at_its_yield_point) {
  EventLog log;
  Exit<void> e = run([&] {
    Fiber<void> target = fork([&] {
      OnExit fin([&] { log.add("finalizer"); });
      try {
        this_fiber::sleep_for(kForever);
        log.add("sleep returned");
      } catch (const Interrupted&) {
        log.add("sleep threw Interrupted");
        throw;
      }
    });
    wait_parked(target);
    Exit<void> te = target.interrupt();
    log.add("interrupt returned");
    EXPECT_TRUE(te.interrupted());
    EXPECT_TRUE(has_interruptor(te.cause(), this_fiber::id()));
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(log.events(), (std::vector<std::string>{"sleep threw Interrupted", "finalizer",
                                                    "interrupt returned"}));
}

TEST_P(DeliveryTest, test_interrupt_running_fiber_stops_at_check_interrupt) {
  // The target never yields; the interrupter is a plain thread (on one
  // worker a fiber interrupter would never run again).
  std::atomic<bool> spinning{false};
  std::atomic<long> iterations{0};
  Fiber<void> target = rt().spawn([&] {
    for (;;) {
      spinning = true;
      ++iterations;
      this_fiber::check_interrupt();
    }
  });
  while (!spinning) std::this_thread::yield();
  Exit<void> te = target.interrupt();
  EXPECT_TRUE(te.interrupted());
  EXPECT_GT(iterations.load(), 0);
}

TEST_P(DeliveryTest, test_interrupt_nothing_delivered_between_yield_points) {
  // The target runs a section without yield points; the request (from a
  // plain thread) lands during it and is only delivered at the next yield.
  EventLog log;
  std::atomic<bool> started{false}, requested{false};
  Fiber<void> target = rt().spawn([&] {
    started = true;
    while (!requested.load()) {
    }
    log.add("section completed after the request");
    this_fiber::yield();
    log.add("unreachable");
  });
  while (!started) std::this_thread::yield();
  target.interrupt_fork();
  requested = true;
  EXPECT_TRUE(target.await().interrupted());
  EXPECT_EQ(log.events(), (std::vector<std::string>{"section completed after the request"}));
}

TEST_P(DeliveryTest, test_interrupt_several_interrupters_are_all_recorded) {
  Exit<void> e = run([&] {
    std::atomic<int> asked{0};
    std::atomic<bool> masked{false};
    Fiber<void> target = fork([&] {
      {
        Uninterruptible mask;
        masked = true;
        while (asked.load() < 2) this_fiber::yield();
      }
      this_fiber::yield();  // first yield point after the mask: delivered here
    });
    while (!masked) this_fiber::yield();  // started: it cannot end before both requests
    Fiber<FiberId> a = fork([&] {
      target.interrupt_fork();
      ++asked;
      return this_fiber::id();
    });
    Fiber<FiberId> b = fork([&] {
      target.interrupt_fork();
      ++asked;
      return this_fiber::id();
    });
    FiberId ida = a.join(), idb = b.join();
    Exit<void> te = target.await();
    ASSERT_TRUE(te.interrupted());
    EXPECT_TRUE(has_interruptor(te.cause(), ida));
    EXPECT_TRUE(has_interruptor(te.cause(), idb));
  });
  EXPECT_TRUE(e.ok());
}

TEST_P(DeliveryTest, test_interrupt_before_start_never_runs_body) {
  std::atomic<int> body{0}, finalizers{0};
  Exit<void> e = run([&] {
    for (int i = 0; i < 200; ++i) {
      Fiber<void> f = fork([&] {
        OnExit fin([&] { ++finalizers; });
        ++body;
        this_fiber::sleep_for(kForever);
      });
      Exit<void> fe = f.interrupt();
      EXPECT_TRUE(fe.interrupted());
    }
  });
  ASSERT_TRUE(e.ok());
  // Every body that started ran its finalizer exactly once; on one worker
  // none can start: fork never switches and interrupt() lands first.
  EXPECT_EQ(body.load(), finalizers.load());
  if (workers() == 1) {
    EXPECT_EQ(body.load(), 0);
  }
}

TEST_P(DeliveryTest, test_interrupt_from_plain_thread_records_thread_id) {
  Fiber<void> target = rt().spawn([] { this_fiber::sleep_for(kForever); });
  wait_parked(target);
  Exit<void> te = target.interrupt();
  ASSERT_TRUE(te.interrupted());
  EXPECT_TRUE(has_interruptor(te.cause(), this_fiber::id()));
}

TEST_P(DeliveryTest, test_interrupt_ended_fiber_returns_existing_exit) {
  Exit<void> e = run([&] {
    Fiber<int> f = fork([] { return 7; });
    EXPECT_EQ(f.join(), 7);
    Exit<int> again = f.interrupt();
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again.value(), 7);
  });
  EXPECT_TRUE(e.ok());
}

TEST_P(DeliveryTest, test_interrupt_awaiter_does_not_touch_awaited) {
  Exit<void> e = run([&] {
    std::atomic<bool> release{false};
    Fiber<int> awaited = fork([&] {
      while (!release) this_fiber::yield();
      return 5;
    });
    Fiber<int> awaiter = fork([&] { return awaited.join(); });
    wait_parked(awaiter);
    EXPECT_TRUE(awaiter.interrupt().interrupted());
    EXPECT_FALSE(awaited.done());
    release = true;
    EXPECT_EQ(awaited.join(), 5);
  });
  EXPECT_TRUE(e.ok());
}

TEST_P(DeliveryTest, test_interrupt_waits_for_slow_finalizers) {
  EventLog log;
  Exit<void> e = run([&] {
    Fiber<void> target = fork([&] {
      OnExit fin([&] {
        this_fiber::sleep_for(std::chrono::milliseconds(20));  // finalizers may suspend
        log.add("finalizer done");
      });
      this_fiber::sleep_for(kForever);
    });
    wait_parked(target);
    EXPECT_TRUE(target.interrupt().interrupted());
    log.add("interrupt returned");
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(log.events(), (std::vector<std::string>{"finalizer done", "interrupt returned"}));
}

TEST_P(DeliveryTest, test_interrupt_uninterruptible_target_delays_interrupt) {
  EventLog log;
  Exit<void> e = run([&] {
    std::atomic<bool> masked{false};
    Fiber<int> target = fork([&] {
      Uninterruptible mask;
      masked = true;
      this_fiber::sleep_for(std::chrono::milliseconds(30));
      log.add("masked work done");
      return 1;
    });
    while (!masked) this_fiber::yield();
    Exit<int> te = target.interrupt();
    log.add("interrupt returned");
    // Ended at the body's end with the request pending: interrupted.
    EXPECT_TRUE(te.interrupted());
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(log.events(), (std::vector<std::string>{"masked work done", "interrupt returned"}));
}

// Races, forced many times: each round must end consistently.

TEST_P(DeliveryTest, test_interrupt_races_wakeup) {
  Exit<void> e = run([&] {
    for (int round = 0; round < test::race_rounds(500); ++round) {
      Fiber<int> producer = fork([] {
        this_fiber::yield();
        return 1;
      });
      std::atomic<int> got{0};
      Fiber<void> consumer = fork([&] { got = producer.join(); });
      Fiber<void> interrupter = fork([&] { consumer.interrupt_fork(); });
      interrupter.join();
      Exit<void> ce = consumer.await();
      // Either the wake-up won (the join completed: value seen, Exit ok or
      // interrupted at the end boundary) or the interrupt won (no value).
      if (ce.ok()) {
        EXPECT_EQ(got.load(), 1);
      } else {
        EXPECT_TRUE(ce.interrupted());
      }
      EXPECT_EQ(producer.join(), 1);
    }
  });
  EXPECT_TRUE(e.ok());
}

TEST_P(DeliveryTest, test_interrupt_races_completion) {
  Exit<void> e = run([&] {
    for (int round = 0; round < test::race_rounds(500); ++round) {
      std::atomic<int> finalizers{0};
      Fiber<int> target = fork([&] {
        OnExit fin([&] { ++finalizers; });
        return 3;
      });
      Fiber<void> interrupter = fork([&] { target.interrupt_fork(); });
      Exit<int> te = target.await();
      interrupter.join();
      EXPECT_TRUE(te.ok() || te.interrupted());
      if (te.ok()) {
        EXPECT_EQ(te.value(), 3);
      }
      EXPECT_LE(finalizers.load(), 1);
      // Never started: no finalizer; started: exactly one.
    }
  });
  EXPECT_TRUE(e.ok());
}

TEST_P(DeliveryTest, test_interrupt_two_interrupters_same_exit) {
  Exit<void> e = run([&] {
    for (int round = 0; round < test::race_rounds(200); ++round) {
      std::atomic<int> finalizers{0};
      Fiber<void> target = fork([&] {
        OnExit fin([&] { ++finalizers; });
        this_fiber::sleep_for(kForever);
      });
      Fiber<bool> a = fork([&] { return target.interrupt().interrupted(); });
      Fiber<bool> b = fork([&] { return target.interrupt().interrupted(); });
      EXPECT_TRUE(a.join());
      EXPECT_TRUE(b.join());
      EXPECT_LE(finalizers.load(), 1);
      EXPECT_TRUE(target.done());
    }
  });
  EXPECT_TRUE(e.ok());
}

TEST_P(DeliveryTest, test_interrupt_races_steal) {
  // Children forked into the LIFO slot/deque are stolen by idle workers
  // while another fiber interrupts them: body runs => finalizer runs once.
  std::atomic<int> bodies{0}, finalizers{0};
  Exit<void> e = run([&] {
    for (int round = 0; round < 300; ++round) {
      std::vector<Fiber<void>> kids;
      for (int i = 0; i < 8; ++i)
        kids.push_back(fork([&] {
          OnExit fin([&] { ++finalizers; });
          ++bodies;
          this_fiber::yield();
        }));
      for (auto& k : kids) k.interrupt_fork();
      for (auto& k : kids) {
        Exit<void> ke = k.await();
        EXPECT_TRUE(ke.ok() || ke.interrupted());
      }
    }
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(bodies.load(), finalizers.load());
}

}  // namespace
}  // namespace weft
