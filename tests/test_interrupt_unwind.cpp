// RuntimeOptions::interrupt_unwind: an interrupt delivered to a parked fiber by
// the unwinder's second phase alone (src/fiber/interrupt_unwind.cpp) is the
// same, to the fiber and its awaiter, as the throw; and every case where it
// would not be declines to the throw. Debug builds also check each walk
// against libgcc's _Unwind_Backtrace (a WEFT_CHECK in the delivery).
#include "support/unwind_test.hpp"
#include "support/weft_test.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <string>
#include <vector>

#include <weft/deferred.hpp>
#include <weft/mutex.hpp>
#include <weft/on_exit.hpp>
#include <weft/semaphore.hpp>
#include <weft/timeout.hpp>

namespace weft {
namespace {

using test::EventLog;
using test::has_interruptor;
using test::kForever;
using test::UnwindTest;
using test::wait_parked;

WEFT_RUNTIME_TEST_SUITE(UnwindTest);

// Frames of user code with a finalizer each, the wait at the bottom.
[[gnu::noinline]] void nested(EventLog& log, Deferred<int>& never, int depth) {
  OnExit fin([&log, depth] {
    log.add("fin " + std::to_string(depth) + " uncaught " +
            std::to_string(std::uncaught_exceptions() > 0));
  });
  if (depth == 0) {
    never.await();
  } else {
    nested(log, never, depth - 1);
  }
  log.add("unreachable");
}

TEST_P(UnwindTest, test_unwind_runs_the_finalizers_in_order_and_ends_interrupted) {
  EventLog log;
  Exit<void> e = run([&] {
    Deferred<int> never;
    Fiber<void> target = fork([&] { nested(log, never, 3); });
    wait_parked(target);
    Exit<void> te = target.interrupt();
    EXPECT_TRUE(te.interrupted());
    EXPECT_TRUE(has_interruptor(te.cause(), this_fiber::id()));
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(log.events(), (std::vector<std::string>{"fin 0 uncaught 1", "fin 1 uncaught 1",
                                                    "fin 2 uncaught 1", "fin 3 uncaught 1"}));
  EXPECT_EQ(unwound(), kWalks ? 1u : 0u);
  EXPECT_EQ(delivered(), 1u);
}

TEST_P(UnwindTest, test_unwind_is_off_by_default) {
  RuntimeOptions o;
  o.workers = GetParam();
  Runtime plain(o);
  if (plain.options().interrupt_unwind)
    GTEST_SKIP() << "WEFT_INTERRUPT_UNWIND=1 in the environment";
  Exit<void> e = plain.block_on([] {
    Deferred<int> never;
    Fiber<void> target = fork([&] { never.await(); });
    wait_parked(target);
    EXPECT_TRUE(target.interrupt().interrupted());
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(plain.stats().interrupts_unwound, 0u);
  EXPECT_EQ(plain.stats().interrupts_delivered, 1u);
}

TEST_P(UnwindTest, test_unwind_declines_when_user_code_catches_interrupted) {
  EventLog log;
  Exit<void> e = run([&] {
    Deferred<int> never;
    Fiber<void> target = fork([&] {
      OnExit fin([&] { log.add("finalizer"); });
      try {
        never.await();
      } catch (const Interrupted& i) {
        log.add("caught Interrupted");
        throw;
      }
    });
    wait_parked(target);
    EXPECT_TRUE(target.interrupt().interrupted());
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(log.events(), (std::vector<std::string>{"caught Interrupted", "finalizer"}));
  EXPECT_EQ(unwound(), 0u);
}

TEST_P(UnwindTest, test_unwind_declines_for_catch_all_and_a_swallowed_interrupt_is_the_users) {
  std::atomic<bool> caught{false};
  Exit<int> e = run([&] {
    Deferred<int> never;
    Fiber<int> target = fork([&] {
      try {
        never.await();
      } catch (...) {
        caught = true;
      }
      return 7;  // swallowed: the fiber still ends interrupted (DESIGN 3.5)
    });
    wait_parked(target);
    Exit<int> te = target.interrupt();
    EXPECT_TRUE(te.interrupted());
    return 1;
  });
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(caught.load());
  EXPECT_EQ(unwound(), 0u);
}

// The body inlined into run_body()'s frame (always_inline; at -O0 into the
// std::invoke frame below it): its handlers then share the frame with the
// runtime's, and the walk must tell them apart.
TEST_P(UnwindTest, test_unwind_declines_for_a_catch_inlined_into_the_body_frame) {
  EventLog log;
  Exit<void> e = run([&] {
    Deferred<int> never;
    Fiber<void> target = fork([&]() __attribute__((always_inline)) {
      try {
        never.await();
      } catch (const Interrupted&) {
        log.add("caught Interrupted");
        throw;
      }
    });
    wait_parked(target);
    EXPECT_TRUE(target.interrupt().interrupted());
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(log.events(), (std::vector<std::string>{"caught Interrupted"}));
  EXPECT_EQ(unwound(), 0u);
}

// The same, with the two handlers of run_body() that can match: catch
// (const Interrupted&), then catch (...) (acquire_release's try has them
// too). Phase 1 would stop at the inlined try; a walk that read only those
// types would take it for the body's own and skip the user's catch (const
// Interrupted&): run_body's never-thrown BodyMark clause tells them apart.
TEST_P(UnwindTest, test_unwind_declines_for_the_runtimes_own_pair_inlined_into_the_body_frame) {
  EventLog log;
  std::atomic<int> uncaught_after{-1};
  Exit<void> e = run([&] {
    Deferred<int> never;
    Fiber<void> target = fork([&]() __attribute__((always_inline)) {
      try {
        never.await();
      } catch (const Interrupted&) {
        log.add("caught Interrupted");
        throw;
      } catch (...) {
        log.add("caught ...");
        throw;
      }
    });
    wait_parked(target);
    EXPECT_TRUE(target.interrupt().interrupted());
    uncaught_after = std::uncaught_exceptions();
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(log.events(), (std::vector<std::string>{"caught Interrupted"}));
  EXPECT_EQ(unwound(), 0u);
  EXPECT_EQ(uncaught_after.load(), 0);
}

// acquire_release's use() parked: its release runs once with the interrupt,
// whether its try (the runtime's pair again) is inlined into the body frame
// or not.
TEST_P(UnwindTest, test_unwind_acquire_release_use_parked_releases_once) {
  EventLog log;
  Exit<void> e = run([&] {
    Deferred<int> never;
    Fiber<void> target = fork([&] {
      acquire_release([] { return 7; }, [&](int) { return never.await(); },
                      [&](int r, const Cause& c) {
                        log.add("release " + std::to_string(r) + " " +
                                std::to_string(c.interrupted_only()) + " " +
                                std::to_string(std::uncaught_exceptions()));
                      });
      log.add("unreachable");
    });
    wait_parked(target);
    EXPECT_TRUE(target.interrupt().interrupted());
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(log.events(), (std::vector<std::string>{"release 7 1 0"}));  // in its catch
}

TEST_P(UnwindTest, test_unwind_takes_a_body_inlined_with_cleanups_only) {
  EventLog log;
  Exit<void> e = run([&] {
    Deferred<int> never;
    Fiber<void> target = fork([&]() __attribute__((always_inline)) {
      OnExit fin([&] { log.add("finalizer " + std::to_string(std::uncaught_exceptions())); });
      never.await();
    });
    wait_parked(target);
    EXPECT_TRUE(target.interrupt().interrupted());
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(log.events(), (std::vector<std::string>{"finalizer 1"}));
  EXPECT_EQ(unwound(), kWalks ? 1u : 0u);
}

TEST_P(UnwindTest, test_unwind_declines_under_a_timeout_on_the_same_stack) {
  // The timeout's frame catches its own deadline: the fiber's interrupt is
  // thrown through it, as always.
  EventLog log;
  Exit<void> e = run([&] {
    Deferred<int> never;
    Fiber<void> target = fork([&] {
      OnExit fin([&] { log.add("outer finalizer"); });
      (void)timeout(std::chrono::hours(1), [&] {
        OnExit inner([&] { log.add("inner finalizer"); });
        never.await();
      });
      log.add("unreachable");
    });
    wait_parked(target);
    EXPECT_TRUE(target.interrupt().interrupted());
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(log.events(), (std::vector<std::string>{"inner finalizer", "outer finalizer"}));
}

TEST_P(UnwindTest, test_unwind_finalizer_that_waits_resumes_the_unwind) {
  // A finalizer parks (masked) in the middle of the unwind; the fiber may
  // come back on another worker, and the unwind goes on from there.
  EventLog log;
  Exit<void> e = run([&] {
    Deferred<int> never;
    Deferred<void> release;
    Fiber<void> target = fork([&] {
      OnExit outer([&] { log.add("outer"); });
      OnExit waits([&] {
        release.await();
        log.add("waited " + std::to_string(std::uncaught_exceptions() > 0));
      });
      never.await();
    });
    wait_parked(target);
    target.interrupt_fork();
    Fiber<void> releaser = fork([&] { release.succeed(); });
    EXPECT_TRUE(target.await().interrupted());
    releaser.join();
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(log.events(), (std::vector<std::string>{"waited 1", "outer"}));
  EXPECT_EQ(unwound(), kWalks ? 1u : 0u);
}

TEST_P(UnwindTest, test_unwind_ends_every_kind_of_wait) {
  // Sleep, Mutex, Semaphore and a join: the same delivery for each.
  Exit<void> e = run([&] {
    Mutex m;
    Semaphore s(0);
    Deferred<int> never;
    std::vector<Fiber<void>> fibers;
    m.lock();
    fibers.push_back(fork([&] { this_fiber::sleep_for(kForever); }));
    fibers.push_back(fork([&] { m.lock(); }));
    fibers.push_back(fork([&] { s.acquire(); }));
    Fiber<void> awaited = fork([&] { never.await(); });
    fibers.push_back(fork([&] { awaited.join(); }));
    for (auto& f : fibers) wait_parked(f);
    wait_parked(awaited);
    for (auto& f : fibers) EXPECT_TRUE(f.interrupt().interrupted());
    EXPECT_TRUE(awaited.interrupt().interrupted());
    m.unlock();
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(unwound(), kWalks ? 5u : 0u);
  EXPECT_EQ(delivered(), 5u);
}

TEST_P(UnwindTest, test_unwind_many_fibers_interrupted_at_once) {
  constexpr int kFibers = 200;
  std::atomic<int> finalized{0};
  Exit<void> e = run([&] {
    Deferred<int> never;
    std::vector<Fiber<void>> fibers;
    for (int i = 0; i < kFibers; ++i) {
      fibers.push_back(fork([&] {
        OnExit fin([&] { finalized.fetch_add(1); });
        never.await();
      }));
    }
    for (auto& f : fibers) wait_parked(f);
    for (auto& f : fibers) f.interrupt_fork();
    for (auto& f : fibers) EXPECT_TRUE(f.await().interrupted());
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(finalized.load(), kFibers);
  EXPECT_EQ(unwound(), kWalks ? std::uint64_t{kFibers} : 0u);
}

TEST_P(UnwindTest, test_unwind_then_a_throw_in_the_same_fiber_keeps_the_counts) {
  // After a fiber ended by phase 2, std::uncaught_exceptions() is back to 0
  // for the next fiber on the worker, and a plain exception is still one.
  Exit<void> e = run([&] {
    Deferred<int> never;
    Fiber<void> first = fork([&] { never.await(); });
    wait_parked(first);
    EXPECT_TRUE(first.interrupt().interrupted());
    EXPECT_EQ(std::uncaught_exceptions(), 0);
    Fiber<int> second = fork([]() -> int {
      EXPECT_EQ(std::uncaught_exceptions(), 0);
      throw std::runtime_error("plain");
    });
    Exit<int> se = second.await();
    EXPECT_TRUE(se.failed());
  });
  ASSERT_TRUE(e.ok());
}

}  // namespace
}  // namespace weft
