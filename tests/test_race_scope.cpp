// race with contestant 0 on the racer's own stack (a RaceScope,
// include/weft/detail/timeout_scope.hpp): a sibling's win ends it the way a
// timeout's deadline ends its task, and every promise of race.hpp holds
// (DESIGN 3.2, 3.5, 3.8, 3.9, 3.10, 3.13).
#include <weft/weft.hpp>

#include "support/timers.hpp"
#include "support/weft_test.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

namespace weft {
namespace {

using namespace std::chrono_literals;
using test::Boom;
using test::contains;
using test::EventLog;
using test::kLong;
using test::RuntimeTest;
using test::wait_parked;
using test::yield_until;

class RaceScopeTest : public RuntimeTest {};
WEFT_RUNTIME_TEST_SUITE(RaceScopeTest);

TEST_P(RaceScopeTest, test_race_contestant_0_runs_on_the_racers_own_fiber) {
  Exit<bool> e = run([] {
    const FiberId racer = this_fiber::id();
    FiberId first, second;
    const int v = race([&] { return (first = this_fiber::id(), 1); },
                       [&] {
                         second = this_fiber::id();
                         this_fiber::sleep_for(kLong);
                         return 2;
                       });
    const bool variadic_on_racer = first == racer;
    std::vector<std::function<int()>> fs{[&] { return (first = this_fiber::id(), 3); },
                                         [] {
                                           this_fiber::sleep_for(kLong);
                                           return 4;
                                         }};
    const int w = race(fs);
    return v == 1 && w == 3 && variadic_on_racer && first == racer &&
           (second == FiberId() || second != racer);
  });
  EXPECT_TRUE(e.value()) << e;
}

TEST_P(RaceScopeTest, test_race_sibling_win_unwinds_contestant_0_on_the_racers_stack) {
  EventLog log;
  Exit<bool> e = run([&] {
    const FiberId racer = this_fiber::id();
    std::vector<FiberId> seen;
    std::atomic<bool> started0{false};
    const int v = race(
        [&] {
          OnExit fin([&] { log.add("finalizer 0"); });
          started0 = true;
          try {
            this_fiber::sleep_for(kLong);
          } catch (const Interrupted& x) {
            seen = x.cause().interruptors();
            log.add("caught 0");
            throw;
          }
          return 1;
        },
        [&] {
          // A win before contestant 0 ran would skip it (DESIGN 3.2).
          yield_until([&] { return started0.load(); });
          return 2;
        });
    log.add("race returned");
    // Sticky only inside the scope: the racer goes on uninterrupted.
    this_fiber::check_interrupt();
    return v == 2 && contains(seen, racer);
  });
  EXPECT_TRUE(e.value()) << e;
  EXPECT_LT(log.index_of("caught 0"), log.index_of("finalizer 0"));
  EXPECT_LT(log.index_of("finalizer 0"), log.index_of("race returned"));
}

TEST_P(RaceScopeTest, test_race_contestant_0_first_interrupts_and_awaits_the_sibling) {
  EventLog log;
  Exit<bool> e = run([&] {
    const FiberId racer = this_fiber::id();
    std::vector<FiberId> by;
    std::atomic<bool> started{false};
    const int v = race(
        [&] {
          yield_until([&] { return started.load(); });  // the sibling is parked, or about to
          return 1;
        },
        [&] {
          OnExit fin([&](const Cause& c) {
            by = c.interruptors();
            log.add("finalizer 1");
          });
          started = true;
          this_fiber::sleep_for(kLong);
          return 2;
        });
    log.add("race returned");
    return v == 1 && contains(by, racer);
  });
  EXPECT_TRUE(e.value()) << e;
  EXPECT_LT(log.index_of("finalizer 1"), log.index_of("race returned"));
}

TEST_P(RaceScopeTest, test_race_sibling_posts_first_while_contestant_0_is_masked) {
  // The sibling wins while contestant 0 is uninterruptible: the win is held
  // off (3.10) and a value contestant 0 then returns loses (first to post wins).
  std::atomic<bool> unmasked_value{false};
  Exit<int> e = run([&] {
    return race(
        [&] {
          {
            Uninterruptible mask;
            yield_until([] { return this_fiber::interrupt_requested(); });  // the fire, held off
          }
          unmasked_value = true;
          return 1;  // no yield point since the mask closed: returned as the sibling won
        },
        [] { return 2; });
  });
  EXPECT_EQ(e.value(), 2) << e;
  EXPECT_TRUE(unmasked_value.load());
}

TEST_P(RaceScopeTest, test_race_masked_contestant_0_delays_the_sibling_win_until_its_mask_ends) {
  EventLog log;
  Exit<int> e = run([&] {
    return race(
        [&] {
          {
            Uninterruptible mask;
            yield_until([] { return this_fiber::interrupt_requested(); });
            this_fiber::yield();  // masked: the win does not end it
            log.add("mask ends");
          }
          this_fiber::yield();  // the first interruptible yield point: unwinds
          log.add("not reached");
          return 1;
        },
        [] { return 2; });
  });
  EXPECT_EQ(e.value(), 2) << e;
  EXPECT_GE(log.index_of("mask ends"), 0);
  EXPECT_EQ(log.index_of("not reached"), -1);
}

TEST_P(RaceScopeTest, test_race_sibling_success_after_contestant_0_won_is_discarded) {
  // Contestant 0 posts first; the sibling, masked, succeeds only after the
  // racer interrupted it (the race was decided): its late report fires nothing.
  std::atomic<bool> sibling_returned{false};
  Exit<bool> e = run([&] {
    std::atomic<bool> started{false};
    const int v = race(
        [&] {
          yield_until([&] { return started.load(); });  // not a win: the sibling is masked
          return 1;
        },
        [&] {
          Uninterruptible mask;
          started = true;
          yield_until([] { return this_fiber::interrupt_requested(); });
          sibling_returned = true;
          return 2;
        });
    this_fiber::yield();
    this_fiber::check_interrupt();  // nothing leaked onto the racer
    return v == 1 && sibling_returned.load();
  });
  EXPECT_TRUE(e.value()) << e;
}

TEST_P(RaceScopeTest, test_race_racer_interrupted_while_contestant_0_unwinds_returns_the_winner) {
  // The sibling won; while contestant 0 unwinds (a masked wait in its
  // finalizer) the racer itself is interrupted: the winner's value is
  // returned and the interrupt stays pending for the next yield point.
  std::atomic<bool> unwinding{false};
  std::atomic<bool> started0{false};
  std::atomic<int> returned{0};
  Exit<bool> e = run([&] {
    Deferred<int> release;
    Fiber<void> racer = fork([&] {
      const int v = race(
          [&] {
            OnExit fin([&] {
              unwinding = true;
              (void)release.await();  // a finalizer runs masked
            });
            started0 = true;
            this_fiber::sleep_for(kLong);
            return 1;
          },
          [&] {
            yield_until([&] { return started0.load(); });  // contestant 0 ran (3.2)
            return 2;
          });
      returned = v;
      this_fiber::check_interrupt();
      returned = -1;
    });
    yield_until([&] { return unwinding.load(); });
    racer.interrupt_fork();
    (void)release.try_succeed(0);
    Exit<void> x = racer.await();
    return x.interrupted() && returned.load() == 2;
  });
  EXPECT_TRUE(e.value()) << e;
}

TEST_P(RaceScopeTest, test_race_racer_interrupted_while_contestant_0_waits_interrupts_all) {
  EventLog log;
  std::atomic<int> parked{0};
  Exit<bool> e = run([&] {
    const FiberId me = this_fiber::id();
    std::vector<FiberId> by0;
    Fiber<int> racer = fork([&] {
      return race(
          [&] {
            OnExit fin([&](const Cause& c) {
              by0 = c.interruptors();
              log.add("finalizer 0");
            });
            ++parked;
            this_fiber::sleep_for(kLong);
            return 1;
          },
          [&] {
            OnExit fin([&] { log.add("finalizer 1"); });
            ++parked;
            this_fiber::sleep_for(kLong);
            return 2;
          });
    });
    yield_until([&] { return parked.load() == 2; });
    Exit<int> x = racer.interrupt();
    log.add("racer ended");
    return x.interrupted() && contains(x.cause().interruptors(), me) && contains(by0, me);
  });
  EXPECT_TRUE(e.value()) << e;
  EXPECT_LT(log.index_of("finalizer 0"), log.index_of("racer ended"));
  EXPECT_LT(log.index_of("finalizer 1"), log.index_of("racer ended"));
}

TEST_P(RaceScopeTest, test_race_contestant_0_fails_then_a_sibling_succeeds) {
  Exit<int> e = run([] {
    Deferred<int> go;
    return race(
        [&]() -> int {
          (void)go.try_succeed(0);
          throw Boom("zero");
        },
        [&] {
          (void)go.await();  // only after contestant 0 failed
          return 2;
        });
  });
  EXPECT_EQ(e.value(), 2) << e;
}

TEST_P(RaceScopeTest, test_race_all_fail_gives_the_causes_in_argument_order) {
  Exit<bool> e = run([] {
    Deferred<int> go;
    Exit<int> x = race_exit(
        [&]() -> int {
          this_fiber::yield();
          (void)go.try_succeed(0);
          throw Boom("zero");
        },
        [&]() -> int {
          (void)go.await();
          throw Boom("one");
        },
        []() -> int { throw Boom("two"); });
    std::vector<std::string> whats;
    for (const std::exception_ptr& p : x.cause().failures()) {
      try {
        std::rethrow_exception(p);
      } catch (const Boom& b) {
        whats.emplace_back(b.what());
      }
    }
    return whats == std::vector<std::string>{"zero", "one", "two"};
  });
  EXPECT_TRUE(e.value()) << e;
}

TEST_P(RaceScopeTest, test_race_first_contestant_0_failing_first_wins) {
  EventLog log;
  Exit<int> e = run([&] {
    std::atomic<bool> started{false};
    return race_first(
        [&]() -> int {
          yield_until([&] { return started.load(); });
          throw Boom("zero");
        },
        [&] {
          OnExit fin([&] { log.add("finalizer 1"); });
          started = true;
          this_fiber::sleep_for(kLong);
          return 2;
        });
  });
  ASSERT_FALSE(e.ok());
  EXPECT_TRUE(e.cause().has_failure()) << e;
  EXPECT_GE(log.index_of("finalizer 1"), 0);
}

TEST_P(RaceScopeTest, test_race_first_sibling_failing_first_unwinds_contestant_0) {
  EventLog log;
  Exit<bool> e = run([&] {
    std::atomic<bool> started0{false};
    try {
      (void)race_first(
          [&] {
            OnExit fin([&] { log.add("finalizer 0"); });
            started0 = true;
            this_fiber::sleep_for(kLong);
            return 1;
          },
          [&]() -> int {
            yield_until([&] { return started0.load(); });  // contestant 0 ran (3.2)
            throw Boom("one");
          });
    } catch (const Boom& b) {
      return std::string(b.what()) == "one";
    }
    return false;
  });
  EXPECT_TRUE(e.value()) << e;
  EXPECT_GE(log.index_of("finalizer 0"), 0);
}

TEST_P(RaceScopeTest, test_race_fibers_forked_by_contestant_0_end_with_it) {
  EventLog log;
  Exit<bool> e = run([&] {
    const FiberId racer = this_fiber::id();
    std::vector<FiberId> by;
    std::atomic<bool> child_parked{false};
    const int v = race(
        [&] {
          Fiber<void> child = fork([&] {
            OnExit fin([&](const Cause& c) {
              by = c.interruptors();
              log.add("child finalizer");
            });
            this_fiber::sleep_for(kLong);
          });
          wait_parked(child);
          child_parked = true;
          this_fiber::sleep_for(kLong);
          return 1;
        },
        [&] {
          yield_until([&] { return child_parked.load(); });
          return 2;
        });
    log.add("race returned");
    return v == 2 && contains(by, racer);
  });
  EXPECT_TRUE(e.value()) << e;
  EXPECT_LT(log.index_of("child finalizer"), log.index_of("race returned"));
}

TEST_P(RaceScopeTest, test_race_contestant_0_fiber_local_changes_end_with_it) {
  FiberLocal<int> local(0);
  Exit<bool> e = run([&] {
    local.set(7);
    const int v = race(
        [&] {
          local.set(1);
          return local.get();
        },
        [] {
          this_fiber::sleep_for(kLong);
          return 2;
        });
    return v == 1 && local.get() == 7;
  });
  EXPECT_TRUE(e.value()) << e;
}

TEST_P(RaceScopeTest, test_race_inside_a_timeout_task_forks_contestant_0) {
  Exit<bool> e = run([] {
    const FiberId caller = this_fiber::id();
    FiberId zero;
    auto r = timeout(kLong, [&] {
      return race([&] { return (zero = this_fiber::id(), 1); },
                  [] {
                    this_fiber::sleep_for(kLong);
                    return 2;
                  });
    });
    // The timeout's scope is open on the caller: the race forks every contestant.
    auto t = timeout(2ms, [] {
      return race(
          [] {
            this_fiber::sleep_for(kLong);
            return 1;
          },
          [] {
            this_fiber::sleep_for(kLong);
            return 2;
          });
    });
    return r == 1 && zero != caller && !t;
  });
  EXPECT_TRUE(e.value()) << e;
}

TEST_P(RaceScopeTest, test_timeout_inside_contestant_0_forks_its_task_and_the_win_ends_it) {
  EventLog log;
  Exit<bool> e = run([&] {
    const FiberId racer = this_fiber::id();
    FiberId task;
    std::atomic<bool> parked{false};
    const int v = race(
        [&] {
          auto r = timeout(kLong, [&] {
            OnExit fin([&] { log.add("task finalizer"); });
            task = this_fiber::id();
            parked = true;
            this_fiber::sleep_for(kLong);
          });
          return r ? 1 : 0;
        },
        [&] {
          yield_until([&] { return parked.load(); });
          return 2;
        });
    log.add("race returned");
    auto d = timeout(1ms, [] { this_fiber::sleep_for(kLong); });  // still usable after
    return v == 2 && task != racer && !d;
  });
  EXPECT_TRUE(e.value()) << e;
  EXPECT_LT(log.index_of("task finalizer"), log.index_of("race returned"));
}

TEST_P(RaceScopeTest, test_race_where_the_racer_is_masked_forks_contestant_0) {
  Exit<bool> e = run([] {
    const FiberId racer = this_fiber::id();
    Uninterruptible mask;
    FiberId zero;
    const int v = race(
        [&] {
          zero = this_fiber::id();
          this_fiber::sleep_for(kLong);  // interruptible: a child starts so (3.3)
          return 1;
        },
        [] { return 2; });
    return v == 2 && zero != racer;
  });
  EXPECT_TRUE(e.value()) << e;
}

TEST_P(RaceScopeTest, test_race_vector_sibling_win_unwinds_contestant_0) {
  EventLog log;
  Exit<int> e = run([&] {
    std::atomic<bool> started0{false};
    std::vector<std::function<int()>> fs;
    fs.emplace_back([&] {
      OnExit fin([&] { log.add("finalizer 0"); });
      started0 = true;
      this_fiber::sleep_for(kLong);
      return 0;
    });
    for (int i = 1; i < 4; ++i)
      fs.emplace_back([i, &started0]() -> int {
        if (i != 3) throw Boom("fails");
        yield_until([&] { return started0.load(); });  // contestant 0 ran (3.2)
        return i;
      });
    return race(fs);
  });
  EXPECT_EQ(e.value(), 3) << e;
  EXPECT_GE(log.index_of("finalizer 0"), 0);
}

TEST_P(RaceScopeTest, test_race_contestant_0_stop_token_stops_at_the_sibling_win) {
  Exit<bool> e = run([] {
    std::atomic<bool> stopped{false};
    std::atomic<bool> started0{false};
    const int v = race(
        [&] {
          std::stop_token t = this_fiber::stop_token();
          std::stop_callback cb(t, [&] { stopped = true; });
          started0 = true;
          this_fiber::sleep_for(kLong);
          return 1;
        },
        [&] {
          yield_until([&] { return started0.load(); });  // contestant 0 ran (3.2)
          return 2;
        });
    // The racer's own token was not stopped.
    return v == 2 && stopped.load() && !this_fiber::stop_token().stop_requested();
  });
  EXPECT_TRUE(e.value()) << e;
}

}  // namespace
}  // namespace weft
