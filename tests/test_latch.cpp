// Latch: countdown, waiting fibers and threads, arrive_and_wait,
// interruption, misuse, destruction.
#include "support/scale.hpp"
#include "support/timed_wait.hpp"
#include "support/weft_test.hpp"

#include <weft/latch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace weft {
namespace {

using test::RuntimeTest;

class LatchTest : public RuntimeTest {};
WEFT_RUNTIME_TEST_SUITE(LatchTest);

// wait_for_waiters() yields until `n` fibers or threads wait on p.
template <class P>
void wait_for_waiters(const P& p, std::size_t n) {
  while (p.waiters() < n) this_fiber::yield();
}

TEST_P(LatchTest, test_latch_counts_down_to_zero) {
  Exit<void> e = run([] {
    Latch l(3);
    EXPECT_FALSE(l.try_wait());
    EXPECT_EQ(l.count(), 3);
    l.count_down();
    l.count_down(2);
    EXPECT_TRUE(l.try_wait());
    l.wait();  // already zero: returns at once
    Latch zero(0);
    EXPECT_TRUE(zero.try_wait());
    zero.wait();
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(LatchTest, test_latch_releases_all_waiters_at_zero) {
  Exit<long> e = run([] {
    Latch l(4);
    std::vector<long> parts(4, 0);  // plain: the latch orders writes before reads (TSan)
    std::vector<Fiber<long>> waiters;
    for (int i = 0; i < 3; ++i)
      waiters.push_back(fork([&] {
        l.wait();
        long sum = 0;
        for (long p : parts) sum += p;
        return sum;
      }));
    std::vector<Fiber<void>> workers;
    for (int i = 0; i < 4; ++i)
      workers.push_back(fork([&, i] {
        parts[i] = i + 1;
        l.count_down();
      }));
    long total = 0;
    for (auto& w : waiters) total += w.join();
    for (auto& w : workers) w.join();
    return total;
  });
  EXPECT_EQ(e.value(), 3 * 10);
}

TEST_P(LatchTest, test_latch_arrive_and_wait_is_a_barrier) {
  Exit<bool> e = run([] {
    constexpr int kN = 6;
    Latch l(kN);
    std::atomic<int> arrived{0};
    std::atomic<bool> early{false};
    std::vector<Fiber<void>> fs;
    for (int i = 0; i < kN; ++i)
      fs.push_back(fork([&] {
        ++arrived;
        l.arrive_and_wait();
        if (arrived.load() != kN) early = true;
      }));
    for (auto& f : fs) f.join();
    return early.load();
  });
  EXPECT_FALSE(e.value());
}

TEST_P(LatchTest, test_latch_plain_threads_and_fibers) {
  Latch start(1);
  Latch done(4);
  std::vector<std::thread> ts;
  for (int t = 0; t < 2; ++t)
    ts.emplace_back([&] {
      start.wait();
      done.count_down();
    });
  std::vector<Fiber<void>> fs;
  for (int f = 0; f < 2; ++f)
    fs.push_back(rt().spawn([&] {
      start.wait();
      done.count_down();
    }));
  while (start.waiters() < 4) std::this_thread::yield();  // everyone parked
  start.count_down();
  done.wait();  // a plain thread waits for fibers and threads
  for (auto& t : ts) t.join();
  for (auto& f : fs) f.join();
  EXPECT_TRUE(done.try_wait());
}

// An interrupted waiter (parked or not yet) leaves; the count is untouched
// and the latch still releases the others.
TEST_P(LatchTest, test_latch_interrupted_waiter_is_removed) {
  for (bool parked_first : {false, true}) {
    Exit<void> e = run([parked_first] {
      Latch l(1);
      Fiber<void> victim = fork([&] { l.wait(); });
      Fiber<void> other = fork([&] { l.wait(); });
      if (parked_first) wait_for_waiters(l, 2);
      Exit<void> ve = victim.interrupt();
      EXPECT_TRUE(ve.interrupted()) << ve;
      EXPECT_EQ(l.count(), 1);
      l.count_down();
      other.join();
    });
    EXPECT_TRUE(e.ok()) << "parked_first=" << parked_first << " " << e;
  }
}

TEST_P(LatchTest, test_latch_interrupted_before_arrive_does_not_count) {
  Exit<void> e = run([] {
    Latch l(2);
    Fiber<void> f = fork([&] {
      try {
        weft::interrupt();
      } catch (const Interrupted&) {
      }
      l.arrive_and_wait();  // the pending interrupt is thrown before arriving
    });
    EXPECT_TRUE(f.await().interrupted());
    EXPECT_EQ(l.count(), 2);
    l.count_down(2);
  });
  EXPECT_TRUE(e.ok()) << e;
}

// count_down() racing the interrupt of a waiter: the waiter either returns
// (and then the count is zero) or ends interrupted; the latch is released.
TEST_P(LatchTest, test_latch_count_down_races_waiter_interrupt) {
  constexpr int kRounds = test::race_rounds(2000);
  int returned = 0, interrupted = 0;
  for (int i = 0; i < kRounds; ++i) {
    Exit<bool> e = run([i] {
      Latch l(1);
      std::atomic<bool> passed{false};
      Fiber<void> waiter = fork([&] {
        l.wait();
        passed = true;
      });
      if (i % 3 != 0) wait_for_waiters(l, 1);
      Fiber<void> interrupter = fork([&] { waiter.interrupt_fork(); });
      if (i % 2 == 0) this_fiber::yield();
      l.count_down();
      interrupter.join();
      (void)waiter.await();  // released or interrupted: either is fine
      EXPECT_TRUE(l.try_wait());
      EXPECT_EQ(l.waiters(), 0u);
      return passed.load();
    });
    (e.value() ? returned : interrupted)++;
  }
  EXPECT_EQ(returned + interrupted, kRounds);
  RecordProperty("returned", returned);
  RecordProperty("interrupted", interrupted);
}

TEST_P(LatchTest, test_latch_bad_counts_throw) {
  EXPECT_THROW(Latch(-1), std::invalid_argument);
  Latch l(2);
  EXPECT_THROW(l.count_down(3), std::invalid_argument);
  EXPECT_THROW(l.count_down(-1), std::invalid_argument);
  EXPECT_EQ(l.count(), 2);  // unchanged
  l.count_down(2);
  try {
    l.count_down();
    ADD_FAILURE() << "count_down below zero must throw";
  } catch (const std::invalid_argument& x) {
    EXPECT_NE(std::string(x.what()).find("weft::Latch"), std::string::npos) << x.what();
  }
}

TEST_P(LatchTest, test_latch_destroyed_with_waiters_wakes_them_with_error) {
  Exit<int> e = run([] {
    auto owner = std::make_unique<Latch>(1);
    Latch* l = owner.get();
    std::atomic<int> errors{0};
    std::vector<Fiber<void>> fs;
    for (int i = 0; i < 3; ++i)
      fs.push_back(fork([l, &errors] {
        try {
          l->wait();
        } catch (const std::logic_error& x) {
          if (std::string(x.what()).find("weft::Latch destroyed") != std::string::npos) ++errors;
        }
      }));
    wait_for_waiters(*l, 3);
    owner.reset();
    for (auto& f : fs) f.join();
    return errors.load();
  });
  EXPECT_EQ(e.value(), 3);
}

// The last waiter may destroy the latch while the count_down() that released
// it is still returning (ASan checks it).
TEST_P(LatchTest, test_latch_destroy_right_after_wait) {
  for (int i = 0; i < test::race_rounds(1000); ++i) {
    Exit<void> e = run([i] {
      auto owner = std::make_unique<Latch>(1);
      Latch* l = owner.get();
      Fiber<void> counter = fork([l] { l->count_down(); });
      if (i % 2 == 0) {
        while (!owner->try_wait()) this_fiber::yield();  // the lock-free fast path
      }
      owner->wait();
      owner.reset();
      counter.join();
    });
    ASSERT_TRUE(e.ok()) << e;
  }
}

// ---------------------------------------------------------------------------
// Timed waits

using namespace std::chrono_literals;

TEST_P(LatchTest, test_latch_wait_for_times_out) {
  Exit<void> e = run([] {
    Latch l(2);
    l.count_down();
    const Deadline d = this_fiber::now() + test::kShortWait;
    EXPECT_FALSE(l.wait_until(d));
    EXPECT_GE(this_fiber::now(), d);  // it waited for the deadline
    EXPECT_FALSE(l.wait_for(test::kShortWait));
    EXPECT_EQ(l.count(), 1);  // untouched
    EXPECT_EQ(l.waiters(), 0u);
    l.count_down();
    EXPECT_TRUE(l.wait_for(0ns));  // zero: true without waiting
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(LatchTest, test_latch_wait_for_succeeds_before_the_deadline) {
  Exit<void> e = run([] {
    Latch l(1);
    std::vector<Fiber<bool>> waiters;
    for (int i = 0; i < 3; ++i) waiters.push_back(fork([&] { return l.wait_for(test::kForever); }));
    wait_for_waiters(l, 3);
    l.count_down();
    for (auto& w : waiters) EXPECT_TRUE(w.join());
    EXPECT_EQ(l.waiters(), 0u);
  });
  EXPECT_TRUE(e.ok()) << e;
}

// A deadline already passed does not park (see the semaphore's test).
TEST_P(LatchTest, test_latch_expired_deadline_does_not_park) {
  Exit<void> e = run([this] {
    Latch l(1);
    std::atomic<bool> other_ran{false};
    Fiber<void> other = fork([&] { other_ran = true; });
    EXPECT_FALSE(l.wait_until(this_fiber::now() - 1s));
    EXPECT_FALSE(l.wait_for(-1ms));
    if (workers() == 1) {
      EXPECT_FALSE(other_ran.load());
    }
    EXPECT_EQ(l.waiters(), 0u);
    other.join();
    l.count_down();
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(LatchTest, test_latch_interrupt_during_timed_wait) {
  Exit<void> e = run([] {
    Latch l(1);
    Fiber<bool> waiter = fork([&] { return l.wait_for(1h); });
    test::wait_parked(waiter);
    wait_for_waiters(l, 1);
    EXPECT_TRUE(waiter.interrupt().interrupted());
    EXPECT_EQ(l.waiters(), 0u);
    EXPECT_EQ(l.count(), 1);
    Fiber<bool> next = fork([&] { return l.wait_for(1h); });
    wait_for_waiters(l, 1);
    l.count_down();
    EXPECT_TRUE(next.join());
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(LatchTest, test_latch_timed_wait_from_plain_threads) {
  Latch l(1);
  bool timed_out = false;
  std::thread t([&] { timed_out = !l.wait_for(test::kShortWait); });
  t.join();
  EXPECT_TRUE(timed_out);
  EXPECT_EQ(l.waiters(), 0u);
  bool reached = false;
  std::thread waiter([&] { reached = l.wait_for(test::kForever); });
  Exit<void> e = run([&] {
    wait_for_waiters(l, 1);
    l.count_down();
  });
  waiter.join();
  EXPECT_TRUE(e.ok()) << e;
  EXPECT_TRUE(reached);
}

// The last count_down races the deadline (deterministic schedules from many
// seeds): true exactly when the count reached zero first, and the untimed
// waiter always wakes.
TEST(LatchRace, test_latch_count_down_races_the_deadline) {
  int reached_count = 0, timed_out_count = 0;
  for (std::uint64_t seed = 1; seed <= test::kRaceSeeds; ++seed) {
    Runtime rt(test::race_options(seed));
    Exit<bool> e = rt.block_on([seed] {
      Latch l(1);
      std::atomic<bool> counted{false};
      const Deadline d = this_fiber::now() + test::race_deadline_us(seed);
      Fiber<bool> timed = fork([&] {
        const bool reached = l.wait_until(d);
        if (reached) {
          EXPECT_TRUE(counted.load()) << "true before the count reached zero";
        }
        return reached;
      });
      Fiber<void> patient = fork([&] { l.wait(); });
      for (int i = 0; i < test::race_delay_steps(seed); ++i) this_fiber::yield();
      counted = true;
      l.count_down();
      patient.join();
      const bool reached = timed.join();
      EXPECT_EQ(l.waiters(), 0u);
      return reached;
    });
    ASSERT_TRUE(e.ok()) << "seed " << seed << " " << e;
    (e.value() ? reached_count : timed_out_count)++;
  }
  EXPECT_GT(reached_count, 0);
  EXPECT_GT(timed_out_count, 0);
}

}  // namespace
}  // namespace weft
