// Latch: countdown, waiting fibers and threads, arrive_and_wait,
// interruption, misuse, destruction.
#include "support/weft_test.hpp"

#include <weft/latch.hpp>

#include <atomic>
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
  int returned = 0, interrupted = 0;
  for (int i = 0; i < 2000; ++i) {
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
  EXPECT_EQ(returned + interrupted, 2000);
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
  for (int i = 0; i < 1000; ++i) {
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

}  // namespace
}  // namespace weft
