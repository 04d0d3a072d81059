// Runtime::stats(): each counter moves exactly as a scripted program says,
// on 1, 2 and 4 workers. The programs synchronise with yields, Deferreds and
// latches, and read the counters after the events happened-before the read.
#include "support/weft_test.hpp"

#include <weft/deferred.hpp>
#include <weft/io.hpp>
#include <weft/latch.hpp>
#include <weft/mutex.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <thread>
#include <vector>

namespace weft {
namespace {

using namespace std::chrono_literals;
using test::RuntimeTest;
using test::yield_until;

class StatsTest : public RuntimeTest {};
WEFT_RUNTIME_TEST_SUITE(StatsTest);

// join_done() joins f once it has ended (a join of an ended fiber never parks).
template <class T>
void join_done(Fiber<T>& f) {
  yield_until([&] { return f.done(); });
  (void)f.await();
}

TEST_P(StatsTest, test_stats_forks_are_counted) {
  constexpr int kForks = 25;
  const RuntimeStats before = rt().stats();
  Exit<void> e = run([] {
    std::vector<Fiber<void>> fibers;
    for (int i = 0; i < kForks; ++i) fibers.push_back(fork([] {}));
    for (auto& f : fibers) f.join();
  });
  ASSERT_TRUE(e.ok()) << e;
  const RuntimeStats after = rt().stats();
  EXPECT_EQ(after.fibers_forked - before.fibers_forked, kForks + 1u);  // + the root
  EXPECT_EQ(after.workers, workers());
}

TEST_P(StatsTest, test_stats_live_and_peak_follow_parked_fibers) {
  constexpr int kParked = 10;
  Exit<void> e = run([this] {
    Deferred<void> release;
    std::vector<Fiber<void>> fibers;
    for (int i = 0; i < kParked; ++i) fibers.push_back(fork([&] { release.await(); }));
    yield_until([&] { return release.waiters() == kParked; });
    const RuntimeStats s = rt().stats();
    EXPECT_EQ(s.fibers_live, kParked + 1);  // + this root
    EXPECT_EQ(s.fibers_live, s.live_fibers);
    EXPECT_GE(s.fibers_peak, kParked + 1);
    release.succeed();
    for (auto& f : fibers) f.join();
  });
  ASSERT_TRUE(e.ok()) << e;
  const RuntimeStats s = rt().stats();
  EXPECT_GE(s.fibers_peak, kParked + 1);  // a peak never falls
  EXPECT_GE(s.fibers_peak, s.fibers_live);
}

TEST_P(StatsTest, test_stats_a_park_is_counted_once) {
  std::uint64_t delta = 0;
  Exit<void> e = run([&] {
    Deferred<int> d;
    const std::uint64_t before = rt().stats().parks;
    Fiber<int> waiter = fork([&] { return d.await(); });
    yield_until([&] { return d.waiters() == 1 && test::parked(detail::core_of(waiter)); });
    d.succeed(1);
    join_done(waiter);
    delta = rt().stats().parks - before;
  });
  ASSERT_TRUE(e.ok()) << e;
  EXPECT_EQ(delta, 1u);
}

TEST_P(StatsTest, test_stats_expired_deadline_try_lock_does_not_park) {
  std::uint64_t delta = 0;
  Exit<void> e = run([&] {
    Mutex m;
    m.lock();
    const std::uint64_t before = rt().stats().parks;
    Fiber<bool> f = fork([&] { return m.try_lock_until(this_fiber::now() - 1s); });
    join_done(f);
    delta = rt().stats().parks - before;
    EXPECT_FALSE(f.join());
    m.unlock();
  });
  ASSERT_TRUE(e.ok()) << e;
  EXPECT_EQ(delta, 0u);
}

TEST_P(StatsTest, test_stats_interrupt_of_a_parked_fiber) {
  RuntimeStats before, after;
  Exit<void> e = run([&] {
    Fiber<void> sleeper = fork([] { this_fiber::sleep_for(test::kForever); });
    test::wait_parked(sleeper);
    before = rt().stats();
    sleeper.interrupt_fork();
    join_done(sleeper);
    after = rt().stats();
  });
  ASSERT_TRUE(e.ok()) << e;
  EXPECT_EQ(after.interrupts_requested - before.interrupts_requested, 1u);
  EXPECT_EQ(after.interrupts_delivered - before.interrupts_delivered, 1u);
  EXPECT_EQ(after.timers_fired - before.timers_fired, 0u);  // the sleep's timer was cancelled
}

TEST_P(StatsTest, test_stats_interrupt_from_a_plain_thread) {
  Fiber<void> sleeper = rt().spawn([] { this_fiber::sleep_for(test::kForever); });
  while (!test::parked(detail::core_of(sleeper))) std::this_thread::yield();
  const RuntimeStats before = rt().stats();
  Exit<void> e = sleeper.interrupt();  // this thread is not a worker: the shared counters
  EXPECT_TRUE(e.interrupted()) << e;
  const RuntimeStats after = rt().stats();
  EXPECT_EQ(after.interrupts_requested - before.interrupts_requested, 1u);
  EXPECT_EQ(after.interrupts_delivered - before.interrupts_delivered, 1u);
}

TEST_P(StatsTest, test_stats_repeated_requests_deliver_once) {
  RuntimeStats before, after;
  Exit<void> e = run([&] {
    Fiber<void> masked = fork([] {
      Uninterruptible mask;
      this_fiber::sleep_for(1ms);
    });
    before = rt().stats();
    masked.interrupt_fork();
    masked.interrupt_fork();
    (void)masked.await();
    after = rt().stats();
  });
  ASSERT_TRUE(e.ok()) << e;
  EXPECT_EQ(after.interrupts_requested - before.interrupts_requested, 2u);
  EXPECT_EQ(after.interrupts_delivered - before.interrupts_delivered, 1u);
}

TEST_P(StatsTest, test_stats_a_sleep_fires_one_timer) {
  std::uint64_t delta = 0;
  Exit<void> e = run([&] {
    const std::uint64_t before = rt().stats().timers_fired;
    Fiber<void> sleeper = fork([] { this_fiber::sleep_for(1ms); });
    join_done(sleeper);
    delta = rt().stats().timers_fired - before;
  });
  ASSERT_TRUE(e.ok()) << e;
  EXPECT_EQ(delta, 1u);
}

TEST_P(StatsTest, test_stats_a_read_on_an_empty_pipe_is_an_io_wait) {
  std::uint64_t delta = 0;
  Exit<void> e = run([&] {
    auto [r, w] = io::pipe();
    const std::uint64_t before = rt().stats().io_waits;
    Fiber<std::size_t> reader = fork([&] {
      std::byte buf[8];
      return io::read_some(r.get(), buf);
    });
    test::wait_parked(reader);
    const std::byte one[1] = {std::byte{1}};
    EXPECT_EQ(io::write_some(w.get(), one), 1u);
    join_done(reader);
    EXPECT_EQ(reader.join(), 1u);
    delta = rt().stats().io_waits - before;
  });
  ASSERT_TRUE(e.ok()) << e;
  EXPECT_EQ(delta, 1u);
}

// A fiber forked by a worker that then computes without a yield point can
// only start on another worker: each one is a steal.
TEST_P(StatsTest, test_stats_fibers_started_elsewhere_are_steals) {
  constexpr int kForks = 4;
  std::uint64_t delta = 0;
  Exit<void> e = run([&] {
    const std::uint64_t before = rt().stats().steals;
    std::atomic<int> started{0};
    Latch done(1);
    std::vector<Fiber<void>> fibers;
    for (int i = 0; i < kForks; ++i)
      fibers.push_back(fork([&] {
        started.fetch_add(1, std::memory_order_relaxed);
        done.wait();
      }));
    if (workers() == 1) {
      yield_until([&] { return started.load() == kForks; });
    } else {
      // No yield point: this worker stays busy, the others must steal.
      const auto give_up = std::chrono::steady_clock::now() + 60s;
      while (started.load() < kForks && std::chrono::steady_clock::now() < give_up) {
      }
      ASSERT_EQ(started.load(), kForks);
    }
    delta = rt().stats().steals - before;
    done.count_down();
    for (auto& f : fibers) f.join();
  });
  ASSERT_TRUE(e.ok()) << e;
  if (workers() == 1) {
    EXPECT_EQ(delta, 0u);
  } else {
    EXPECT_GE(delta, static_cast<std::uint64_t>(kForks));
  }
}

}  // namespace
}  // namespace weft
