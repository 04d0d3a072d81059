// The stall detector (RuntimeOptions::stall_threshold, on_stall): a fiber
// that runs past the threshold without reaching a yield point is named once,
// with its worker and the call site of its last yield point; a fiber that
// reaches check_interrupt() is not.
#include <weft/weft.hpp>

#include <gtest/gtest.h>

#include "support/weft_test.hpp"

#include <atomic>
#include <chrono>
#include <mutex>
#include <vector>

namespace weft {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Reports {
  std::mutex mu;
  std::vector<StallReport> seen;
  std::atomic<int> count{0};
};

Runtime make_runtime(Reports& reports, unsigned workers, std::chrono::milliseconds threshold) {
  RuntimeOptions o;
  o.workers = workers;
  o.stall_threshold = threshold;
  o.on_stall = [&reports](const StallReport& r) {
    std::lock_guard lk(reports.mu);
    reports.seen.push_back(r);
    reports.count.fetch_add(1, std::memory_order_release);
  };
  return Runtime(o);
}

class StallTest : public ::testing::TestWithParam<unsigned> {};

TEST_P(StallTest, test_stall_names_the_fiber_its_worker_and_last_yield_point) {
  Reports reports;
  Runtime rt = make_runtime(reports, GetParam(), 20ms);
  std::atomic<int> line{0};
  Exit<FiberId> e = rt.block_on(
      [&] {
        line = __LINE__ + 1;
        this_fiber::yield();
        // No yield point from here until the monitor reported us (bounded:
        // 60 s, then the test fails instead of hanging).
        const Clock::time_point give_up = Clock::now() + 60s;
        while (reports.count.load(std::memory_order_acquire) == 0 && Clock::now() < give_up) {
        }
        return this_fiber::id();
      },
      {"spinner"});
  ASSERT_TRUE(e.ok()) << e;
  std::lock_guard lk(reports.mu);
  ASSERT_EQ(reports.seen.size(), 1u);  // once per stall
  const StallReport& r = reports.seen.front();
  EXPECT_EQ(r.fiber, e.value());
  EXPECT_EQ(r.name, "spinner");
  EXPECT_LT(r.worker, GetParam());
  EXPECT_GE(r.running, 20ms);
  EXPECT_EQ(r.last_yield_point.line(), static_cast<unsigned>(line.load()));
  EXPECT_NE(std::string(r.last_yield_point.file_name()).find("test_stall.cpp"), std::string::npos);
}

// A loop that calls check_interrupt() is at a yield point all the time: the
// detector's probe (at half the threshold) makes it yield, and it is never
// reported. (The threshold leaves 50 ms for the probe to be seen, so that a
// worker thread the OS holds back briefly is not taken for a stall.)
TEST_P(StallTest, test_stall_skips_a_loop_that_checks_for_interrupts) {
  Reports reports;
  Runtime rt = make_runtime(reports, GetParam(), 100ms);
  Exit<void> e = rt.block_on([&] {
    const Clock::time_point end = Clock::now() + 500ms;  // five thresholds
    while (Clock::now() < end) this_fiber::check_interrupt();
  });
  ASSERT_TRUE(e.ok()) << e;
  EXPECT_EQ(reports.count.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(Workers, StallTest, ::testing::Values(1u, 2u));

}  // namespace
}  // namespace weft
