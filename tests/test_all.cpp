// all and for_each_par (DESIGN.md §3.11).
#include <weft/all.hpp>

#include "support/weft_test.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

namespace weft {
namespace {

using namespace std::chrono_literals;
using test::Boom;
using test::EventLog;
using test::RuntimeTest;
using test::contains;
using test::yield_until;

constexpr auto kLong = std::chrono::hours(1);  // a sleep nobody waits out

class AllTest : public RuntimeTest {};
WEFT_RUNTIME_TEST_SUITE(AllTest);

TEST_P(AllTest, test_all_values_in_argument_order) {
  using Result = std::tuple<int, std::monostate, std::string>;
  std::atomic<bool> third_done{false};
  Exit<Result> e = run([&] {
    return all(
        [&] {
          yield_until([&] { return third_done.load(); });  // ends last
          return 1;
        },
        [] {},
        [&] {
          third_done = true;
          return std::string("three");
        });
  });
  auto [a, b, c] = e.value();
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, std::monostate{});
  EXPECT_EQ(c, "three");
}

TEST_P(AllTest, test_all_no_tasks_returns_empty_tuple) {
  Exit<bool> e = run([] {
    std::tuple<> t = all();
    (void)t;
    return true;
  });
  EXPECT_TRUE(e.value());
}

TEST_P(AllTest, test_all_fail_fast_awaits_sibling_finalizers) {
  EventLog log;
  std::mutex mu;
  std::vector<FiberId> sibling_interruptors;
  std::atomic<bool> sibling_started{false};
  FiberId caller;
  Exit<bool> e = run([&] {
    caller = this_fiber::id();
    try {
      all(
          [&] {
            OnExit fin([&](const Cause& c) {
              this_fiber::sleep_for(10ms);  // a slow finalizer: all waits for it
              log.add("sibling finalizer");
              std::lock_guard lk(mu);
              sibling_interruptors = c.interruptors();
            });
            sibling_started = true;
            this_fiber::sleep_for(kLong);
            return 1;
          },
          [&]() -> int {
            yield_until([&] { return sibling_started.load(); });
            throw Boom("fail fast");
          });
    } catch (const Boom& b) {
      log.add("all threw");
      return std::string(b.what()) == "fail fast";
    }
    return false;
  });
  EXPECT_TRUE(e.value());
  EXPECT_EQ(log.events(), (std::vector<std::string>{"sibling finalizer", "all threw"}));
  std::lock_guard lk(mu);
  EXPECT_TRUE(contains(sibling_interruptors, caller));
}

TEST_P(AllTest, test_all_fails_with_first_failure_alone) {
  Exit<void> e = run([] {
    all([]() -> int { throw Boom("first"); },
        []() -> int {
          this_fiber::sleep_for(kLong);  // interrupted: not a failure
          throw Boom("second");
        });
  });
  ASSERT_TRUE(e.failed());
  EXPECT_EQ(e.cause().failures().size(), 1u);
  const Boom* b = e.cause().failure<Boom>();
  ASSERT_NE(b, nullptr);
  EXPECT_STREQ(b->what(), "first");
}

TEST_P(AllTest, test_all_caller_interrupted_interrupts_tasks) {
  EventLog log;
  std::atomic<int> started{0};
  Exit<bool> e = run([&] {
    Fiber<void> caller = fork([&] {
      auto task = [&](int i) {
        return [&, i] {
          OnExit fin([&, i] { log.add("finalizer " + std::to_string(i)); });
          ++started;
          this_fiber::sleep_for(kLong);
        };
      };
      all(task(0), task(1), task(2));
      log.add("all returned");
    });
    yield_until([&] { return started.load() == 3; });
    Exit<void> ce = caller.interrupt();
    log.add("caller ended");
    return ce.interrupted();
  });
  EXPECT_TRUE(e.value());
  EXPECT_EQ(log.index_of("all returned"), -1);
  const int ended = log.index_of("caller ended");
  for (int i = 0; i < 3; ++i) {
    const int fin = log.index_of("finalizer " + std::to_string(i));
    EXPECT_GE(fin, 0);
    EXPECT_LT(fin, ended);
  }
}

TEST_P(AllTest, test_all_vector_values_in_order) {
  std::atomic<int> ended{0};
  Exit<std::vector<int>> e = run([&] {
    std::vector<std::function<int()>> fs;
    for (int i = 0; i < 8; ++i)
      fs.push_back([i, &ended] {
        yield_until([&] { return ended.load() == 7 - i; });  // end in reverse order
        ++ended;
        return i * i;
      });
    return all(fs);
  });
  EXPECT_EQ(e.value(), (std::vector<int>{0, 1, 4, 9, 16, 25, 36, 49}));
}

TEST_P(AllTest, test_all_vector_void_and_empty) {
  Exit<bool> e = run([] {
    std::atomic<int> n{0};
    std::vector<std::function<void()>> fs(5, [&] { ++n; });
    std::vector<std::monostate> r = all(fs);
    std::vector<std::function<int()>> none;
    return r.size() == 5 && n == 5 && all(none).empty();
  });
  EXPECT_TRUE(e.value());
}

TEST_P(AllTest, test_all_vector_failure_rethrown) {
  Exit<void> e = run([] {
    std::vector<std::function<int()>> fs;
    for (int i = 0; i < 4; ++i)
      fs.push_back([i]() -> int {
        if (i == 2) throw Boom("item 2");
        this_fiber::sleep_for(kLong);
        return i;
      });
    all(fs);
  });
  ASSERT_NE(e.cause().failure<Boom>(), nullptr);
  EXPECT_STREQ(e.cause().failure<Boom>()->what(), "item 2");
}

TEST_P(AllTest, test_all_move_only_values) {
  Exit<int> e = run([] {
    auto [a, b] =
        all([] { return std::make_unique<int>(2); }, [] { return std::make_unique<int>(3); });
    return *a * *b;
  });
  EXPECT_EQ(e.value(), 6);
}

TEST_P(AllTest, test_for_each_par_zero_concurrency_throws) {
  Exit<void> e = run([] {
    std::vector<int> v{1, 2, 3};
    for_each_par(
        v.begin(), v.end(), [](int) {}, 0);
  });
  ASSERT_TRUE(e.failed());
  EXPECT_NE(e.cause().failure<std::invalid_argument>(), nullptr);
}

TEST_P(AllTest, test_for_each_par_visits_every_item_bounded) {
  std::atomic<int> in_flight{0};
  std::atomic<int> max_in_flight{0};
  std::mutex mu;
  std::multiset<int> seen;
  Exit<void> e = run([&] {
    std::vector<int> v(40);
    std::iota(v.begin(), v.end(), 0);
    for_each_par(
        v.begin(), v.end(),
        [&](int x) {
          const int now = ++in_flight;
          int prev = max_in_flight.load();
          while (prev < now && !max_in_flight.compare_exchange_weak(prev, now)) {
          }
          this_fiber::yield();  // let the others overlap
          --in_flight;
          std::lock_guard lk(mu);
          seen.insert(x);
        },
        3);
  });
  ASSERT_TRUE(e.ok());
  EXPECT_LE(max_in_flight.load(), 3);
  EXPECT_EQ(seen.size(), 40u);
  for (int i = 0; i < 40; ++i) EXPECT_EQ(seen.count(i), 1u);
}

TEST_P(AllTest, test_for_each_par_concurrency_one_never_starts_after_failure) {
  std::atomic<int> started{0};
  Exit<void> e = run([&] {
    std::vector<int> v{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    for_each_par(
        v.begin(), v.end(),
        [&](int x) {
          ++started;
          if (x == 2) throw Boom("item 2");
        },
        1);
  });
  ASSERT_NE(e.cause().failure<Boom>(), nullptr);
  EXPECT_EQ(started.load(), 3);  // items 0, 1, 2; nothing after the failure
}

TEST_P(AllTest, test_for_each_par_concurrency_two_never_starts_after_failure) {
  std::mutex mu;
  std::set<int> started;
  EventLog log;
  Exit<void> e = run([&] {
    std::vector<int> v{0, 1, 2, 3, 4, 5, 6, 7};
    for_each_par(
        v.begin(), v.end(),
        [&](int x) {
          {
            std::lock_guard lk(mu);
            started.insert(x);
          }
          if (x == 0) throw Boom("item 0");
          OnExit fin([&, x] { log.add("finalizer " + std::to_string(x)); });
          this_fiber::sleep_for(kLong);  // item 1: still running when 0 fails
        },
        2);
  });
  ASSERT_NE(e.cause().failure<Boom>(), nullptr);
  std::lock_guard lk(mu);
  for (int x : started) EXPECT_LT(x, 2) << "item " << x << " started after the failure";
  if (started.count(1)) {
    EXPECT_EQ(log.count("finalizer 1"), 1);
  }
}

TEST_P(AllTest, test_for_each_par_rethrows_after_running_items_were_awaited) {
  EventLog log;
  std::atomic<int> running{0};
  Exit<bool> e = run([&] {
    std::vector<int> v{0, 1, 2, 3};
    try {
      for_each_par(
          v.begin(), v.end(),
          [&](int x) {
            if (x == 3) {
              yield_until([&] { return running.load() == 3; });
              throw Boom("item 3");
            }
            OnExit fin([&] { log.add("finalizer"); });
            ++running;
            this_fiber::sleep_for(kLong);
          },
          4);
    } catch (const Boom&) {
      log.add("rethrown");
      return true;
    }
    return false;
  });
  EXPECT_TRUE(e.value());
  EXPECT_EQ(log.events(),
            (std::vector<std::string>{"finalizer", "finalizer", "finalizer", "rethrown"}));
}

TEST_P(AllTest, test_for_each_par_empty_range) {
  Exit<void> e = run([] {
    std::vector<int> v;
    for_each_par(
        v.begin(), v.end(), [](int) { FAIL(); }, 4);
  });
  EXPECT_TRUE(e.ok());
}

TEST_P(AllTest, test_for_each_par_caller_interrupted_stops_items) {
  std::atomic<int> started{0};
  std::atomic<bool> returned{false};
  Exit<bool> e = run([&] {
    Fiber<void> caller = fork([&] {
      std::vector<int> v(100);
      for_each_par(
          v.begin(), v.end(),
          [&](int) {
            ++started;
            this_fiber::sleep_for(kLong);
          },
          4);
      returned = true;
    });
    yield_until([&] { return started.load() >= 1; });
    return caller.interrupt().interrupted();
  });
  EXPECT_TRUE(e.value());
  EXPECT_FALSE(returned.load());
  EXPECT_LE(started.load(), 4);
}

TEST_P(AllTest, test_for_each_par_list_iterators) {
  std::atomic<int> sum{0};
  Exit<void> e = run([&] {
    std::set<int> items{1, 2, 3, 4, 5};
    for_each_par(
        items.begin(), items.end(), [&](int x) { sum += x; }, 2);
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(sum.load(), 15);
}

}  // namespace
}  // namespace weft
