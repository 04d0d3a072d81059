// run_steps and StepPolicy (DESIGN.md §1 "Stop points").
#include <weft/steps.hpp>

#include "support/weft_test.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <list>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace weft {
namespace {

using namespace std::chrono_literals;
using test::RuntimeTest;

template <class P>
void yield_until(P pred) {
  while (!pred()) this_fiber::yield();
}

std::vector<std::size_t> indices(std::size_t from, std::size_t to) {
  std::vector<std::size_t> v(to - from);
  std::iota(v.begin(), v.end(), from);
  return v;
}

class StepsTest : public RuntimeTest {};
WEFT_RUNTIME_TEST_SUITE(StepsTest);

TEST_P(StepsTest, test_steps_all_run_without_interrupt) {
  Exit<StepsOutcome<int>> e = run([] {
    std::vector<int> items{1, 2, 3, 4};
    return run_steps(items, [](int x) { return x * 10; });
  });
  StepsOutcome<int>& o = e.value();
  EXPECT_EQ(o.values, (std::vector<int>{10, 20, 30, 40}));
  EXPECT_EQ(o.processed, indices(0, 4));
  EXPECT_TRUE(o.not_processed.empty());
  EXPECT_TRUE(o.exit.ok());
}

TEST_P(StepsTest, test_steps_each_step_is_uninterruptible) {
  Exit<bool> e = run([] {
    std::vector<int> items{1, 2};
    bool masked = true;
    auto o = run_steps(items, [&](int) { masked = masked && !this_fiber::interruptible(); });
    return masked && o.exit.ok() && this_fiber::interruptible();
  });
  EXPECT_TRUE(e.value());
}

// Self-interruption inside a step (masked: recorded, not thrown) is a
// deterministic stand-in for an interrupt arriving during that step.
TEST_P(StepsTest, test_steps_finish_current_stops_after_the_step_under_way) {
  StepsOutcome<int> o;
  Exit<void> e = run([&] {
    std::vector<int> items{0, 1, 2, 3, 4, 5};
    o = run_steps(items, [](int x) {
      if (x == 2) weft::interrupt();
      return x;
    });
  });
  EXPECT_TRUE(e.interrupted());  // the interrupt stays pending: the fiber ends interrupted
  EXPECT_EQ(o.values, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(o.processed, indices(0, 3));
  EXPECT_EQ(o.not_processed, indices(3, 6));
  EXPECT_TRUE(o.exit.interrupted());
}

TEST_P(StepsTest, test_steps_poll_next_n_runs_n_more_steps) {
  StepsOutcome<int> o;
  Exit<void> e = run([&] {
    std::vector<int> items{0, 1, 2, 3, 4, 5, 6};
    o = run_steps(
        items,
        [](int x) {
          if (x == 1) weft::interrupt();
          return x;
        },
        StepPolicy::poll_next_n(2));
  });
  EXPECT_TRUE(e.interrupted());
  EXPECT_EQ(o.processed, indices(0, 4));  // 0, 1 (under way), then 2 and 3
  EXPECT_EQ(o.not_processed, indices(4, 7));
  EXPECT_TRUE(o.exit.interrupted());
}

TEST_P(StepsTest, test_steps_poll_next_n_beyond_the_end_succeeds) {
  StepsOutcome<int> o;
  Exit<void> e = run([&] {
    std::vector<int> items{0, 1, 2};
    o = run_steps(
        items,
        [](int x) {
          if (x == 0) weft::interrupt();
          return x;
        },
        StepPolicy::poll_next_n(10));
  });
  EXPECT_TRUE(e.interrupted());
  EXPECT_EQ(o.processed, indices(0, 3));
  EXPECT_TRUE(o.exit.ok());
}

TEST_P(StepsTest, test_steps_ignore_runs_every_step_and_keeps_interrupt_pending) {
  StepsOutcome<int> o;
  std::atomic<bool> pending_after{false};
  Exit<void> e = run([&] {
    std::vector<int> items{0, 1, 2, 3};
    o = run_steps(
        items,
        [](int x) {
          if (x == 0) weft::interrupt();
          return x;
        },
        StepPolicy::ignore());
    pending_after = this_fiber::interrupt_requested();
  });
  EXPECT_TRUE(e.interrupted());
  EXPECT_TRUE(pending_after.load());
  EXPECT_EQ(o.processed, indices(0, 4));
  EXPECT_TRUE(o.not_processed.empty());
  EXPECT_TRUE(o.exit.ok());
}

TEST_P(StepsTest, test_steps_external_interrupt_finishes_current_step) {
  StepsOutcome<std::string> o;
  std::atomic<bool> step1_started{false};
  FiberId interrupter;
  Exit<bool> e = run([&] {
    interrupter = this_fiber::id();
    Fiber<void> batch = fork([&] {
      std::vector<int> items{0, 1, 2, 3};
      o = run_steps(items, [&](int x) {
        if (x == 1) {
          step1_started = true;
          this_fiber::sleep_for(20ms);  // masked: the interrupt does not cut it short
        }
        return "step " + std::to_string(x);
      });
    });
    yield_until([&] { return step1_started.load(); });
    return batch.interrupt().interrupted();
  });
  EXPECT_TRUE(e.value());
  EXPECT_EQ(o.values, (std::vector<std::string>{"step 0", "step 1"}));
  EXPECT_EQ(o.not_processed, indices(2, 4));
  ASSERT_TRUE(o.exit.interrupted());
  auto by = o.exit.cause().interruptors();
  EXPECT_NE(std::find(by.begin(), by.end(), interrupter), by.end());
}

TEST_P(StepsTest, test_steps_interrupt_pending_before_the_first_step) {
  StepsOutcome<int> none;
  StepsOutcome<int> two;
  Exit<void> e = run([&] {
    Uninterruptible mask;
    weft::interrupt();  // pending
    mask.restore([&] {
      std::vector<int> items{0, 1, 2, 3};
      none = run_steps(items, [](int x) { return x; });
      two = run_steps(
          items, [](int x) { return x; }, StepPolicy::poll_next_n(2));
    });
  });
  EXPECT_TRUE(e.interrupted());
  EXPECT_TRUE(none.processed.empty());
  EXPECT_EQ(none.not_processed, indices(0, 4));
  EXPECT_TRUE(none.exit.interrupted());
  EXPECT_EQ(two.processed, indices(0, 2));
  EXPECT_EQ(two.not_processed, indices(2, 4));
}

TEST_P(StepsTest, test_steps_masked_caller_runs_every_step) {
  StepsOutcome<int> o;
  Exit<void> e = run([&] {
    Uninterruptible mask;
    std::vector<int> items{0, 1, 2};
    o = run_steps(items, [](int x) {
      if (x == 0) weft::interrupt();
      return x;
    });
  });
  EXPECT_TRUE(e.interrupted());
  EXPECT_EQ(o.processed, indices(0, 3));
  EXPECT_TRUE(o.exit.ok());
}

TEST_P(StepsTest, test_steps_failing_step_stops_and_is_not_processed) {
  Exit<StepsOutcome<int>> e = run([] {
    std::vector<int> items{0, 1, 2, 3};
    return run_steps(items, [](int x) {
      if (x == 1) throw std::runtime_error("step 1 failed");
      return x;
    });
  });
  StepsOutcome<int>& o = e.value();
  EXPECT_EQ(o.values, (std::vector<int>{0}));
  EXPECT_EQ(o.processed, indices(0, 1));
  EXPECT_EQ(o.not_processed, indices(1, 4));
  ASSERT_TRUE(o.exit.failed());
  EXPECT_NE(o.exit.cause().failure<std::runtime_error>(), nullptr);
}

TEST_P(StepsTest, test_steps_void_steps_give_monostate_values) {
  Exit<StepsOutcome<void>> e = run([] {
    std::list<int> items{5, 6, 7};
    return run_steps(items, [](int) {});
  });
  EXPECT_EQ(e.value().values.size(), 3u);
  EXPECT_EQ(e.value().processed, indices(0, 3));
}

TEST_P(StepsTest, test_steps_resume_the_rest) {
  Exit<std::vector<int>> e = run([] {
    std::vector<int> items{0, 1, 2, 3, 4, 5};
    StepsOutcome<int> first;
    Fiber<void> batch = fork([&] {
      first = run_steps(items, [](int x) {
        if (x == 2) weft::interrupt();
        return x;
      });
    });
    (void)batch.await();  // its outcome is in `first`
    std::vector<int> rest;
    for (std::size_t i : first.not_processed) rest.push_back(items[i]);
    StepsOutcome<int> second = run_steps(rest, [](int x) { return x; });
    std::vector<int> done = first.values;
    done.insert(done.end(), second.values.begin(), second.values.end());
    return done;
  });
  EXPECT_EQ(e.value(), (std::vector<int>{0, 1, 2, 3, 4, 5}));
}

TEST(StepsPlainThread, test_steps_work_on_a_plain_thread) {
  std::vector<int> items{1, 2, 3};
  auto o = run_steps(items, [](int x) { return x + 1; });
  EXPECT_EQ(o.values, (std::vector<int>{2, 3, 4}));
  EXPECT_TRUE(o.exit.ok());
}

}  // namespace
}  // namespace weft
