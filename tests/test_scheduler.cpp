// Scheduler behaviour: depth-first execution of fork trees (small live set),
// idle workers sleep, fairness of yield, work spreads across workers.
#include "support/weft_test.hpp"

#include <sys/resource.h>

#include <atomic>
#include <set>
#include <thread>

namespace weft {
namespace {

class SchedulerTest : public test::RuntimeTest {};
WEFT_RUNTIME_TEST_SUITE(SchedulerTest);

struct LiveSet {
  std::atomic<long> live{0}, max{0};
  void enter() {
    long n = ++live;
    long m = max.load();
    while (n > m && !max.compare_exchange_weak(m, n)) {
    }
  }
  void leave() { --live; }
};

long tree(LiveSet& s, int depth, long index) {
  s.enter();
  long sum = index;
  if (depth > 0) {
    std::vector<Fiber<long>> kids;
    kids.reserve(10);
    sum = 0;
    for (long i = 0; i < 10; ++i)
      kids.push_back(fork([&s, depth, index, i] { return tree(s, depth - 1, index * 10 + i); }));
    for (auto& k : kids) sum += k.join();
  }
  s.leave();
  return sum;
}

TEST_P(SchedulerTest, test_scheduler_fork_tree_runs_depth_first) {
  // 10-ary, depth 4: 11,111 fibers. Most-recent-first scheduling keeps the
  // set of started-but-unfinished fibers near depth x fan-out per worker;
  // breadth-first (FIFO) would start thousands at once.
  LiveSet s;
  Exit<long> e = run([&] { return tree(s, 4, 0); });
  EXPECT_EQ(e.value(), 9999L * 10000 / 2);
  EXPECT_LT(s.max.load(), 200L * workers()) << "live set too large: not depth-first";
}

TEST_P(SchedulerTest, test_scheduler_idle_runtime_sleeps) {
  rusage before{}, after{};
  getrusage(RUSAGE_SELF, &before);
  const auto t0 = std::chrono::steady_clock::now();
  // Measuring idleness needs wall time to pass; nothing synchronises on it.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  getrusage(RUSAGE_SELF, &after);
  const auto wall = std::chrono::steady_clock::now() - t0;
  auto cpu = [](const rusage& r) {
    return std::chrono::seconds(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
           std::chrono::microseconds(r.ru_utime.tv_usec + r.ru_stime.tv_usec);
  };
  const auto used = cpu(after) - cpu(before);
  EXPECT_LT(used * 10, wall) << "idle workers should not spin (" << workers() << " workers)";
}

TEST_P(SchedulerTest, test_scheduler_yield_is_fair) {
  // Two fibers that only yield alternate; neither starves the other.
  Exit<bool> e = run([] {
    std::atomic<int> a{0}, b{0};
    std::atomic<bool> stop{false};
    Fiber<void> fa = fork([&] {
      while (!stop) {
        ++a;
        this_fiber::yield();
      }
    });
    Fiber<void> fb = fork([&] {
      while (!stop) {
        ++b;
        this_fiber::yield();
      }
    });
    while (a.load() < 1000 || b.load() < 1000) this_fiber::yield();
    stop = true;
    fa.join();
    fb.join();
    return true;
  });
  EXPECT_TRUE(e.value());
}

TEST_P(SchedulerTest, test_scheduler_work_spreads_across_workers) {
  // CPU-bound children forked from one fiber are stolen by idle workers.
  std::mutex mu;
  std::set<std::thread::id> threads;
  Exit<void> e = run([&] {
    std::vector<Fiber<void>> kids;
    std::atomic<int> running{0};
    for (unsigned i = 0; i < workers() * 4; ++i)
      kids.push_back(fork([&] {
        {
          std::lock_guard lk(mu);
          threads.insert(std::this_thread::get_id());
        }
        ++running;
        // Busy until every worker has taken one (or all started): no yield,
        // so only stealing can spread them.
        const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
        while (std::chrono::steady_clock::now() < until) {
        }
      }));
    for (auto& k : kids) k.join();
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(threads.size(), workers());
}

}  // namespace
}  // namespace weft
