// DESIGN 3.5, 3.7: the end of a fiber, supervision of children, daemons,
// join/value rethrow rules, disconnect, stop_token.
#include "support/weft_test.hpp"

#include <algorithm>
#include <atomic>
#include <latch>
#include <stop_token>
#include <thread>

namespace weft {
namespace {

using test::EventLog;
using test::kForever;
using test::wait_parked;

class SupervisionTest : public test::RuntimeTest {};
WEFT_RUNTIME_TEST_SUITE(SupervisionTest);

TEST_P(SupervisionTest, test_ending_pending_interrupt_discards_value) {
  Exit<int> e = run([] {
    {
      Uninterruptible mask;
      weft::interrupt();
    }
    return 42;  // no yield point between the mask and the end
  });
  EXPECT_TRUE(e.interrupted());
  EXPECT_THROW(e.value(), Interrupted);
}

TEST_P(SupervisionTest, test_ending_children_interrupted_and_awaited_before_exit) {
  EventLog log;
  Exit<void> e = run([&] {
    std::atomic<std::uint64_t> parent_id{0};
    Fiber<Fiber<void>> parent = fork([&] {
      parent_id = this_fiber::id().value();
      Fiber<void> child = fork([&] {
        OnExit fin([&] { log.add("child finalizer"); });
        this_fiber::sleep_for(kForever);
      });
      wait_parked(child);
      log.add("parent body done");
      return child;
    });
    Fiber<void> child = parent.join();
    log.add("parent awaited");
    ASSERT_TRUE(child.done());  // no child outlives its parent
    Exit<void> ce = child.await();
    ASSERT_TRUE(ce.interrupted());
    EXPECT_EQ(ce.cause().interruptors(), std::vector<FiberId>{FiberId(parent_id.load())});
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(log.events(),
            (std::vector<std::string>{"parent body done", "child finalizer", "parent awaited"}));
}

TEST_P(SupervisionTest, test_ending_grandchildren_end_before_grandparent) {
  std::atomic<int> finalizers{0}, started{0};
  Exit<void> e = run([&] {
    Fiber<void> top = fork([&] {
      for (int i = 0; i < 3; ++i) {
        fork([&] {
          OnExit f1([&] { ++finalizers; });
          for (int j = 0; j < 3; ++j) {
            fork([&] {
              OnExit f2([&] { ++finalizers; });
              ++started;
              this_fiber::sleep_for(kForever);
            });
          }
          ++started;
          this_fiber::sleep_for(kForever);
        });
      }
      while (started.load() < 12) this_fiber::yield();  // all have finalizers installed
    });
    top.join();
    EXPECT_EQ(finalizers.load(), 3 + 9);  // all ended before top's Exit was published
  });
  EXPECT_TRUE(e.ok());
}

TEST_P(SupervisionTest, test_daemon_outlives_forker_and_ends_with_runtime) {
  auto log = std::make_shared<EventLog>();
  {
    Runtime local({.workers = GetParam()});
    auto started = std::make_shared<std::atomic<bool>>(false);
    Exit<Fiber<void>> e = local.block_on([log, started] {
      Fiber<void> d = fork_daemon([log, started] {
        OnExit fin([log] { log->add("daemon finalizer"); });
        *started = true;
        this_fiber::sleep_for(kForever);
      });
      while (!*started) this_fiber::yield();
      return d;
    });
    ASSERT_TRUE(e.ok());
    EXPECT_FALSE(e.value().done());  // the forker ended, the daemon lives on
    log->add("runtime destroying");
  }
  EXPECT_EQ(log->events(), (std::vector<std::string>{"runtime destroying", "daemon finalizer"}));
}

TEST_P(SupervisionTest, test_join_interrupted_fiber_throws_but_joiner_goes_on) {
  Exit<std::string> e = run([] {
    Fiber<int> f = fork([] {
      this_fiber::sleep_for(kForever);
      return 1;
    });
    wait_parked(f);
    f.interrupt_fork();
    std::string outcome;
    try {
      f.join();
    } catch (const Interrupted& i) {
      outcome = "caught Interrupted";
      EXPECT_FALSE(i.cause().interruptors().empty());
    }
    // Not marked interrupted: yield points keep working.
    EXPECT_FALSE(this_fiber::interrupt_requested());
    this_fiber::yield();
    this_fiber::sleep_for(std::chrono::milliseconds(1));
    return outcome + ", then went on";
  });
  EXPECT_EQ(e.value(), "caught Interrupted, then went on");
}

TEST_P(SupervisionTest, test_interrupted_is_not_a_std_exception) {
  Exit<std::string> e = run([] {
    Fiber<void> f = fork([] { this_fiber::sleep_for(kForever); });
    wait_parked(f);
    f.interrupt_fork();
    try {
      try {
        f.join();
      } catch (const std::exception&) {
        return std::string("swallowed by std::exception");
      }
    } catch (const Interrupted&) {
      return std::string("passed through");
    }
    return std::string("nothing thrown");
  });
  EXPECT_EQ(e.value(), "passed through");
}

TEST_P(SupervisionTest, test_disconnect_returns_at_once_when_caller_interrupted) {
  auto log = std::make_shared<EventLog>();
  std::atomic<bool> background_done{false};
  Deferred<void> release;  // the background work ends only after the caller did
  Exit<void> e = run([&] {
    Fiber<void> caller = fork([&] {
      disconnect([&] {
        Uninterruptible mask;  // slow, masked work: would delay a plain await
        release.await();
        background_done = true;
      });
    });
    wait_parked(caller);
    EXPECT_TRUE(caller.interrupt().interrupted());
    log->add(background_done ? "caller ended after background" : "caller ended first");
    release.succeed();
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(log->events(), std::vector<std::string>{"caller ended first"});
  rt_.reset();  // the daemon finishes before the runtime goes
  rt_ = std::make_unique<Runtime>(RuntimeOptions{.workers = GetParam()});
  EXPECT_TRUE(background_done.load());
}

TEST_P(SupervisionTest, test_stop_token_fires_on_interrupt) {
  EventLog log;
  Exit<void> e = run([&] {
    Fiber<void> f = fork([&] {
      std::stop_callback cb(this_fiber::stop_token(), [&] { log.add("stop callback"); });
      this_fiber::sleep_for(kForever);
    });
    wait_parked(f);
    EXPECT_TRUE(f.interrupt().interrupted());
    log.add("interrupt returned");
    // A token taken after the interrupt, where it can be delivered, is
    // already stopped (one taken inside the mask never is: test_masks).
    std::atomic<bool> stopped{false};
    Fiber<void> g = fork([&] {
      {
        Uninterruptible mask;
        weft::interrupt();
      }
      stopped = this_fiber::stop_token().stop_requested();
    });
    EXPECT_TRUE(g.await().interrupted());
    EXPECT_TRUE(stopped.load());
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(log.events(), (std::vector<std::string>{"stop callback", "interrupt returned"}));
}

TEST_P(SupervisionTest, test_stop_token_cancels_std_code) {
  Exit<void> e = run([&] {
    std::atomic<bool> started{false};
    Fiber<int> f = fork([&] {
      std::stop_token tok = this_fiber::stop_token();
      started = true;
      int spins = 0;
      while (!tok.stop_requested()) {  // code that only knows std::stop_token
        ++spins;
        Uninterruptible mask;
        this_fiber::yield();
      }
      return spins;
    });
    while (!started) this_fiber::yield();
    f.interrupt_fork();
    // It saw the stop, returned normally; the pending request makes it
    // interrupted at its end boundary.
    EXPECT_TRUE(f.await().interrupted());
  });
  EXPECT_TRUE(e.ok());
}

TEST_P(SupervisionTest, test_runtime_destructor_runs_every_finalizer) {
  // Fibers interrupted before they start run nothing (DESIGN 3.2), so wait
  // until all 200 have installed their finalizers before destroying.
  std::atomic<int> finalizers{0};
  std::latch installed(200);
  {
    Runtime local({.workers = GetParam()});
    for (int i = 0; i < 100; ++i) {
      local.spawn([&] {
        OnExit fin([&] { ++finalizers; });
        fork([&] {
          OnExit fin2([&] { ++finalizers; });
          installed.count_down();
          this_fiber::sleep_for(kForever);
        });
        installed.count_down();
        this_fiber::sleep_for(kForever);
      });
    }
    installed.wait();
  }
  EXPECT_EQ(finalizers.load(), 200);
}

TEST_P(SupervisionTest, test_runtime_destructor_reports_uninterruptible_fiber) {
  testing::internal::CaptureStderr();
  {
    RuntimeOptions o;
    o.workers = GetParam();
    o.shutdown_grace = std::chrono::milliseconds(10);
    Runtime local(o);
    std::atomic<bool> masked{false};
    ForkOptions fo;
    fo.name = "stubborn";
    local.spawn(
        [&] {
          Uninterruptible mask;
          masked = true;
          this_fiber::sleep_for(std::chrono::milliseconds(300));  // outlasts the grace period
        },
        fo);
    while (!masked) std::this_thread::yield();
  }
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("still waiting"), std::string::npos) << err;
  EXPECT_NE(err.find("'stubborn'"), std::string::npos) << err;
}

TEST_P(SupervisionTest, test_runtime_spawn_during_shutdown_throws) {
  auto message = std::make_shared<std::string>();
  {
    auto local = std::make_unique<Runtime>(RuntimeOptions{.workers = GetParam()});
    Runtime* rtp = local.get();
    std::atomic<bool> started{false};
    local->spawn([rtp, message, &started] {
      OnExit fin([rtp, message] {
        try {
          rtp->spawn([] {});
        } catch (const std::logic_error& e) {
          *message = e.what();
        }
      });
      started = true;
      this_fiber::sleep_for(kForever);
    });
    while (!started) std::this_thread::yield();
  }
  EXPECT_NE(message->find("shutting down"), std::string::npos) << *message;
}

TEST_P(SupervisionTest, test_runtime_dump_lists_blocked_fibers) {
  ForkOptions o;
  o.name = "sleeper";
  Fiber<void> f = rt().spawn([] { this_fiber::sleep_for(kForever); }, o);
  wait_parked(f);
  std::string dump = rt().dump();
  EXPECT_NE(dump.find("'sleeper'"), std::string::npos) << dump;
  EXPECT_NE(dump.find("parked in sleep"), std::string::npos) << dump;
  EXPECT_TRUE(f.interrupt().interrupted());
}

}  // namespace
}  // namespace weft
