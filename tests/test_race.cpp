// race, race_exit, race_first (DESIGN.md §3.9).
#include <weft/deferred.hpp>
#include <weft/race.hpp>

#include "support/weft_test.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace weft {
namespace {

using namespace std::chrono_literals;
using test::Boom;
using test::contains;
using test::EventLog;
using test::RuntimeTest;
using test::yield_until;

constexpr auto kLong = std::chrono::hours(1);  // a sleep nobody waits out

class RaceTest : public RuntimeTest {};
WEFT_RUNTIME_TEST_SUITE(RaceTest);

TEST_P(RaceTest, test_race_first_success_wins_value) {
  Exit<int> e = run([] {
    return race(
        [] {
          this_fiber::sleep_for(kLong);
          return 1;
        },
        [] { return 2; });
  });
  EXPECT_EQ(e.value(), 2);
}

TEST_P(RaceTest, test_race_loser_finalizer_runs_before_race_returns) {
  EventLog log;
  Exit<int> e = run([&] {
    int v = race(
        [&] {
          OnExit fin([&] { log.add("loser finalizer"); });
          this_fiber::sleep_for(kLong);
          return 1;
        },
        [&] {
          this_fiber::yield();  // the loser may or may not start first
          return 2;
        });
    log.add("race returned");
    return v;
  });
  EXPECT_EQ(e.value(), 2);
  const int fin = log.index_of("loser finalizer");
  const int ret = log.index_of("race returned");
  ASSERT_GE(ret, 0);
  // The loser may have been interrupted before it started (then no finalizer);
  // if it ran, its finalizer ran before race returned.
  if (fin >= 0) {
    EXPECT_LT(fin, ret);
  }
  EXPECT_EQ(log.count("loser finalizer"), fin >= 0 ? 1 : 0);
}

TEST_P(RaceTest, test_race_loser_finalizer_always_before_return_when_started) {
  EventLog log;
  std::atomic<bool> loser_started{false};
  Exit<int> e = run([&] {
    int v = race(
        [&] {
          OnExit fin([&] { log.add("loser finalizer"); });
          loser_started = true;
          this_fiber::sleep_for(kLong);
          return 1;
        },
        [&] {
          yield_until([&] { return loser_started.load(); });
          return 2;
        });
    log.add("race returned");
    return v;
  });
  EXPECT_EQ(e.value(), 2);
  EXPECT_EQ(log.events(), (std::vector<std::string>{"loser finalizer", "race returned"}));
}

TEST_P(RaceTest, test_race_loser_interrupted_by_racing_fiber) {
  std::mutex mu;
  std::vector<FiberId> loser_interruptors;
  std::atomic<bool> loser_started{false};
  FiberId racer;
  Exit<int> e = run([&] {
    racer = this_fiber::id();
    return race(
        [&] {
          OnExit fin([&](const Cause& c) {
            std::lock_guard lk(mu);
            loser_interruptors = c.interruptors();
          });
          loser_started = true;
          this_fiber::sleep_for(kLong);
          return 1;
        },
        [&] {
          yield_until([&] { return loser_started.load(); });
          return 2;
        });
  });
  EXPECT_EQ(e.value(), 2);
  std::lock_guard lk(mu);
  EXPECT_TRUE(contains(loser_interruptors, racer));
}

TEST_P(RaceTest, test_race_all_fail_parallel_cause_in_argument_order) {
  std::atomic<bool> second_failing{false};
  Exit<Exit<int>> e = run([&] {
    return race_exit(
        [&]() -> int {
          yield_until([&] { return second_failing.load(); });  // fails last
          throw Boom("first argument");
        },
        [&]() -> int {
          second_failing = true;
          throw Boom("second argument");
        });
  });
  Exit<int>& inner = e.value();
  ASSERT_TRUE(inner.failed());
  auto failures = inner.cause().failures();
  ASSERT_EQ(failures.size(), 2u);
  auto message = [](std::exception_ptr p) -> std::string {
    try {
      std::rethrow_exception(p);
    } catch (const std::exception& x) {
      return x.what();
    }
  };
  EXPECT_EQ(message(failures[0]), "first argument");
  EXPECT_EQ(message(failures[1]), "second argument");
}

TEST_P(RaceTest, test_race_all_fail_throws_cause_error) {
  bool threw_cause_error = false;
  Exit<int> e = run([&] {
    try {
      return race([]() -> int { throw Boom("a"); }, []() -> int { throw Boom("b"); });
    } catch (const CauseError& error) {
      threw_cause_error = error.cause().failures().size() == 2;
      throw;
    }
  });
  EXPECT_TRUE(threw_cause_error);
  // The CauseError escaped the fiber: its cause is the two failures, unwrapped.
  ASSERT_TRUE(e.failed());
  EXPECT_EQ(e.cause().failures().size(), 2u);
  EXPECT_EQ(e.cause().failure<CauseError>(), nullptr);
  EXPECT_NE(e.cause().failure<Boom>(), nullptr);
}

TEST_P(RaceTest, test_race_single_failure_rethrows_original) {
  Exit<int> e = run([] { return race([]() -> int { throw Boom("only"); }); });
  EXPECT_THROW(e.value(), Boom);
}

TEST_P(RaceTest, test_race_failure_does_not_win_while_another_may_succeed) {
  std::atomic<bool> failing{false};
  Exit<int> e = run([&] {
    return race(
        [&]() -> int {
          failing = true;
          throw Boom("fast failure");
        },
        [&] {
          yield_until([&] { return failing.load(); });  // succeeds after the failure
          return 7;
        });
  });
  EXPECT_EQ(e.value(), 7);
}

TEST_P(RaceTest, test_race_first_takes_a_failure) {
  EventLog log;
  Exit<int> e = run([&] {
    try {
      return race_first(
          [&] {
            OnExit fin([&] { log.add("slow finalizer"); });
            this_fiber::sleep_for(kLong);
            return 1;
          },
          []() -> int { throw Boom("fast failure"); });
    } catch (const Boom&) {
      log.add("race_first threw");
      return -1;
    }
  });
  EXPECT_EQ(e.value(), -1);
  const int fin = log.index_of("slow finalizer");
  if (fin >= 0) {
    EXPECT_LT(fin, log.index_of("race_first threw"));
  }
}

TEST_P(RaceTest, test_race_first_takes_a_success) {
  Exit<int> e = run([] {
    return race_first([] { return 3; },
                      []() -> int {
                        this_fiber::sleep_for(kLong);
                        throw Boom("never");
                      });
  });
  EXPECT_EQ(e.value(), 3);
}

TEST_P(RaceTest, test_race_unstarted_loser_never_runs) {
  std::atomic<bool> second_ran{false};
  Exit<int> e = run([&] {
    return race([] { return 1; },
                [&] {
                  second_ran = true;
                  return 2;
                });
  });
  ASSERT_TRUE(e.ok());
  // On one worker the contestants start in argument order: the first ends
  // at once and wins, the second is interrupted before it starts.
  if (workers() == 1) {
    EXPECT_EQ(e.value(), 1);
    EXPECT_FALSE(second_ran.load());
  }
}

TEST_P(RaceTest, test_race_racer_interrupted_interrupts_and_awaits_contestants) {
  EventLog log;
  std::atomic<int> started{0};
  std::atomic<bool> after_race{false};
  std::mutex mu;
  std::vector<std::pair<int, std::vector<FiberId>>> interruptors;
  FiberId racer;
  FiberId main_fiber;
  Exit<bool> e = run([&] {
    main_fiber = this_fiber::id();
    Fiber<int> outer = fork([&] {
      racer = this_fiber::id();
      auto contestant = [&](int i) {
        return [&, i] {
          OnExit fin([&, i](const Cause& c) {
            log.add("finalizer " + std::to_string(i));
            std::lock_guard lk(mu);
            interruptors.emplace_back(i, c.interruptors());
          });
          ++started;
          this_fiber::sleep_for(kLong);
          return i;
        };
      };
      int v = race(contestant(0), contestant(1));
      after_race = true;
      return v;
    });
    yield_until([&] { return started.load() == 2; });
    Exit<int> oe = outer.interrupt();
    log.add("outer ended");
    EXPECT_TRUE(oe.interrupted());
    EXPECT_TRUE(contains(oe.cause().interruptors(), this_fiber::id()));
    return true;
  });
  EXPECT_TRUE(e.value());
  EXPECT_FALSE(after_race.load());
  const int ended = log.index_of("outer ended");
  EXPECT_LT(log.index_of("finalizer 0"), ended);
  EXPECT_LT(log.index_of("finalizer 1"), ended);
  EXPECT_GE(log.index_of("finalizer 0"), 0);
  EXPECT_GE(log.index_of("finalizer 1"), 0);
  std::lock_guard lk(mu);
  ASSERT_EQ(interruptors.size(), 2u);
  // Contestant 1 is a fiber the racer interrupted; contestant 0 runs on the
  // racer's own stack (a RaceScope), so it sees the racer's own interrupt.
  for (auto& [i, ids] : interruptors) EXPECT_TRUE(contains(ids, i == 0 ? main_fiber : racer)) << i;
}

TEST_P(RaceTest, test_race_interrupt_pending_on_entry_starts_nothing) {
  std::atomic<bool> ran{false};
  Exit<int> e = run([&] {
    weft::Uninterruptible mask;
    weft::interrupt();  // recorded, pending
    return mask.restore([&] {
      return race([&] {
        ran = true;
        return 1;
      });
    });
  });
  EXPECT_TRUE(e.interrupted());
  EXPECT_FALSE(ran.load());
}

TEST_P(RaceTest, test_race_masked_racer_waits_for_winner) {
  std::atomic<bool> started{false};
  std::atomic<int> got{0};
  Deferred<void> go;  // the winner finishes only after the interrupt was requested
  Exit<bool> e = run([&] {
    Fiber<void> outer = fork([&] {
      weft::Uninterruptible mask;
      got = race(
          [] {
            this_fiber::sleep_for(kLong);
            return 1;
          },
          [&] {
            started = true;
            go.await();
            return 2;
          });
    });
    yield_until([&] { return started.load(); });
    // A masked racer is not torn down: it still waits for its winner; the
    // pending interrupt ends the fiber afterwards.
    outer.interrupt_fork();
    go.succeed();
    return outer.await().interrupted();
  });
  EXPECT_TRUE(e.value());
  EXPECT_EQ(got.load(), 2);
}

TEST_P(RaceTest, test_race_void_contestants) {
  std::atomic<int> winner{0};
  Exit<void> e = run([&] { race([&] { this_fiber::sleep_for(kLong); }, [&] { winner = 2; }); });
  EXPECT_TRUE(e.ok());
  EXPECT_EQ(winner.load(), 2);
}

TEST_P(RaceTest, test_race_move_only_result) {
  Exit<int> e = run([] {
    std::unique_ptr<int> p = race(
        [] {
          this_fiber::sleep_for(kLong);
          return std::make_unique<int>(1);
        },
        [] { return std::make_unique<int>(42); });
    return *p;
  });
  EXPECT_EQ(e.value(), 42);
}

TEST_P(RaceTest, test_race_vector_fastest_wins) {
  Exit<int> e = run([] {
    std::vector<std::function<int()>> fs;
    for (int i = 0; i < 5; ++i)
      fs.push_back([i] {
        if (i != 3) this_fiber::sleep_for(kLong);
        return i;
      });
    return race(fs);
  });
  EXPECT_EQ(e.value(), 3);
}

TEST_P(RaceTest, test_race_vector_exit_and_first) {
  Exit<bool> e = run([] {
    std::vector<std::function<int()>> fail_all;
    for (int i = 0; i < 3; ++i)
      fail_all.push_back([i]() -> int { throw Boom("f" + std::to_string(i)); });
    Exit<int> all_failed = race_exit(fail_all);
    std::vector<std::function<int()>> first;
    first.push_back([]() -> int { throw Boom("quick"); });
    first.push_back([] {
      this_fiber::sleep_for(kLong);
      return 1;
    });
    bool first_threw = false;
    try {
      race_first(first);
    } catch (const Boom&) {
      first_threw = true;
    }
    return all_failed.failed() && all_failed.cause().failures().size() == 3 && first_threw;
  });
  EXPECT_TRUE(e.value());
}

TEST_P(RaceTest, test_race_empty_vector_throws_invalid_argument) {
  Exit<void> e = run([] {
    std::vector<std::function<int()>> none;
    race(none);
  });
  ASSERT_TRUE(e.failed());
  EXPECT_NE(e.cause().failure<std::invalid_argument>(), nullptr);
}

TEST_P(RaceTest, test_race_exit_reports_success) {
  Exit<Exit<std::string>> e = run([] {
    return race_exit([] { return std::string("x"); },
                     []() -> std::string {
                       this_fiber::sleep_for(kLong);
                       return "y";
                     });
  });
  ASSERT_TRUE(e.value().ok());
  EXPECT_EQ(e.value().value(), "x");
}

TEST_P(RaceTest, test_race_stress_many_contestants) {
  Exit<bool> e = run([] {
    for (int round = 0; round < 50; ++round) {
      std::vector<std::function<int()>> fs;
      const int winner = round % 16;
      for (int i = 0; i < 16; ++i)
        fs.push_back([i, winner] {
          if (i != winner) this_fiber::sleep_for(kLong);
          return i;
        });
      if (race(fs) != winner) return false;
    }
    return true;
  });
  EXPECT_TRUE(e.value());
}

TEST_P(RaceTest, test_race_nested) {
  Exit<int> e = run([] {
    return race(
        [] {
          return race(
              [] {
                this_fiber::sleep_for(kLong);
                return 1;
              },
              [] { return 2; });
        },
        [] {
          this_fiber::sleep_for(kLong);
          return 3;
        });
  });
  EXPECT_EQ(e.value(), 2);
}

}  // namespace
}  // namespace weft
