// Semaphore: counting, bounded concurrency, FIFO hand-off, plain threads,
// interruption (an interrupted waiter takes no permit; finalizers release
// held permits), destruction.
#include "support/weft_test.hpp"

#include <weft/deferred.hpp>
#include <weft/on_exit.hpp>
#include <weft/semaphore.hpp>

#include <algorithm>
#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace weft {
namespace {

using test::RuntimeTest;

class SemaphoreTest : public RuntimeTest {};
WEFT_RUNTIME_TEST_SUITE(SemaphoreTest);

// wait_for_waiters() yields until `n` fibers or threads wait on p.
template <class P>
void wait_for_waiters(const P& p, std::size_t n) {
  while (p.waiters() < n) this_fiber::yield();
}

TEST_P(SemaphoreTest, test_semaphore_counts_permits) {
  Exit<void> e = run([] {
    Semaphore s(2);
    EXPECT_EQ(s.available(), 2u);
    s.acquire();
    EXPECT_TRUE(s.try_acquire());
    EXPECT_FALSE(s.try_acquire());
    EXPECT_EQ(s.available(), 0u);
    s.release();
    EXPECT_EQ(s.available(), 1u);
    s.release(3);
    EXPECT_EQ(s.available(), 4u);
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(SemaphoreTest, test_semaphore_bounds_concurrency) {
  Exit<int> e = run([] {
    Semaphore s(3);
    std::atomic<int> inside{0};
    std::atomic<int> peak{0};
    std::vector<Fiber<void>> fs;
    for (int f = 0; f < 20; ++f)
      fs.push_back(fork([&] {
        for (int i = 0; i < 20; ++i) {
          s.acquire();
          OnExit release([&] { s.release(); });
          const int now = ++inside;
          int p = peak.load();
          while (now > p && !peak.compare_exchange_weak(p, now)) {
          }
          this_fiber::yield();
          --inside;
        }
      }));
    for (auto& f : fs) f.join();
    EXPECT_EQ(s.available(), 3u);
    return peak.load();
  });
  EXPECT_LE(e.value(), 3);
  EXPECT_GE(e.value(), 1);
}

TEST_P(SemaphoreTest, test_semaphore_hands_permits_in_fifo_order) {
  Exit<std::vector<int>> e = run([] {
    Semaphore s(0);
    std::vector<int> order;  // written by one waiter at a time: release() hands over one by one
    std::vector<Fiber<void>> fs;
    for (int i = 0; i < 4; ++i) {
      fs.push_back(fork([&, i] {
        s.acquire();
        order.push_back(i);
        s.release();  // pass it on
      }));
      wait_for_waiters(s, static_cast<std::size_t>(i + 1));
    }
    s.release();
    for (auto& f : fs) f.join();
    EXPECT_EQ(s.available(), 1u);
    return order;
  });
  EXPECT_EQ(e.value(), (std::vector<int>{0, 1, 2, 3}));
}

TEST_P(SemaphoreTest, test_semaphore_release_hands_permit_no_barging) {
  Exit<void> e = run([] {
    Semaphore s(0);
    Fiber<void> waiter = fork([&] { s.acquire(); });
    wait_for_waiters(s, 1);
    s.release();
    EXPECT_FALSE(s.try_acquire());  // the permit went to the waiter, not to the pool
    EXPECT_EQ(s.available(), 0u);
    waiter.join();
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(SemaphoreTest, test_semaphore_release_many_wakes_many) {
  Exit<void> e = run([] {
    Semaphore s(0);
    std::vector<Fiber<void>> fs;
    for (int i = 0; i < 5; ++i) fs.push_back(fork([&] { s.acquire(); }));
    wait_for_waiters(s, 5);
    s.release(7);  // five handed over, two left
    for (auto& f : fs) f.join();
    EXPECT_EQ(s.available(), 2u);
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(SemaphoreTest, test_semaphore_plain_threads_and_fibers) {
  Semaphore s(0);
  std::atomic<int> done{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 3; ++t)
    ts.emplace_back([&] {
      s.acquire();
      ++done;
    });
  std::vector<Fiber<void>> fs;
  for (int f = 0; f < 3; ++f)
    fs.push_back(rt().spawn([&] {
      s.acquire();
      ++done;
    }));
  Fiber<void> releaser = rt().spawn([&] {
    for (int i = 0; i < 6; ++i) s.release();
  });
  releaser.join();
  for (auto& t : ts) t.join();
  for (auto& f : fs) f.join();
  EXPECT_EQ(done.load(), 6);
  EXPECT_EQ(s.available(), 0u);
}

// An interrupted waiter (parked or not yet) takes no permit.
TEST_P(SemaphoreTest, test_semaphore_interrupted_waiter_takes_no_permit) {
  for (bool parked_first : {false, true}) {
    Exit<void> e = run([parked_first] {
      Semaphore s(0);
      Fiber<void> waiter = fork([&] { s.acquire(); });
      if (parked_first) wait_for_waiters(s, 1);
      Exit<void> we = waiter.interrupt();
      EXPECT_TRUE(we.interrupted()) << we;
      EXPECT_EQ(s.waiters(), 0u);
      s.release();
      EXPECT_EQ(s.available(), 1u);  // not handed to the dead waiter
    });
    EXPECT_TRUE(e.ok()) << "parked_first=" << parked_first << " " << e;
  }
}

// A permit held through a finalizer is released when its fiber is interrupted.
TEST_P(SemaphoreTest, test_semaphore_permit_released_by_interrupted_fiber) {
  Exit<void> e = run([] {
    Semaphore s(1);
    Deferred<void> never;
    Fiber<void> holder = fork([&] {
      s.acquire();
      OnExit release([&] { s.release(); });
      never.await();
    });
    while (never.waiters() < 1) this_fiber::yield();
    EXPECT_EQ(s.available(), 0u);
    Fiber<void> waiter = fork([&] { s.acquire(); });
    wait_for_waiters(s, 1);
    EXPECT_TRUE(holder.interrupt().interrupted());
    waiter.join();  // the finalizer's release handed the permit on
    EXPECT_EQ(s.available(), 0u);
    s.release();
  });
  EXPECT_TRUE(e.ok()) << e;
}

// release() racing the interrupt of the waiter: exactly one permit exists
// afterwards, either held by the waiter or available.
TEST_P(SemaphoreTest, test_semaphore_release_races_waiter_interrupt) {
  int acquired = 0, left = 0;
  for (int i = 0; i < 2000; ++i) {
    Exit<std::pair<bool, std::size_t>> e = run([i] {
      Semaphore s(0);
      std::atomic<bool> got{false};
      Fiber<void> waiter = fork([&] {
        s.acquire();
        got = true;  // keeps the permit
      });
      if (i % 3 != 0) wait_for_waiters(s, 1);
      Fiber<void> interrupter = fork([&] { waiter.interrupt_fork(); });
      if (i % 2 == 0) this_fiber::yield();
      s.release();
      interrupter.join();
      (void)waiter.await();  // acquired or interrupted: either is fine
      return std::pair{got.load(), s.available()};
    });
    auto [got, available] = e.value();
    EXPECT_EQ((got ? 1u : 0u) + available, 1u) << "iteration " << i;
    acquired += got;
    left += available == 1;
  }
  EXPECT_EQ(acquired + left, 2000);
  RecordProperty("acquired", acquired);
  RecordProperty("left", left);
}

TEST_P(SemaphoreTest, test_semaphore_acquire_is_a_yield_point) {
  std::atomic<bool> threw{false};
  Semaphore s(1);
  Exit<void> e = run([&] {
    try {
      weft::interrupt();
    } catch (const Interrupted&) {
    }
    try {
      s.acquire();
    } catch (const Interrupted&) {
      threw = true;
    }
  });
  EXPECT_TRUE(threw.load());
  EXPECT_TRUE(e.interrupted()) << e;
  EXPECT_EQ(s.available(), 1u);
}

TEST_P(SemaphoreTest, test_semaphore_destroyed_with_waiters_wakes_them_with_error) {
  Exit<int> e = run([] {
    auto owner = std::make_unique<Semaphore>(0);
    Semaphore* s = owner.get();
    std::atomic<int> errors{0};
    std::vector<Fiber<void>> fs;
    for (int i = 0; i < 3; ++i)
      fs.push_back(fork([s, &errors] {
        try {
          s->acquire();
        } catch (const std::logic_error& x) {
          if (std::string(x.what()).find("weft::Semaphore destroyed") != std::string::npos)
            ++errors;
        }
      }));
    wait_for_waiters(*s, 3);
    owner.reset();
    for (auto& f : fs) f.join();
    return errors.load();
  });
  EXPECT_EQ(e.value(), 3);
}

// The last acquirer may destroy the semaphore while the release() that
// handed it the permit is still returning (ASan checks it).
TEST_P(SemaphoreTest, test_semaphore_destroy_right_after_acquire) {
  for (int i = 0; i < 1000; ++i) {
    Exit<void> e = run([] {
      auto owner = std::make_unique<Semaphore>(0);
      Semaphore* s = owner.get();
      Fiber<void> releaser = fork([s] { s->release(); });
      owner->acquire();
      owner.reset();
      releaser.join();
    });
    ASSERT_TRUE(e.ok()) << e;
  }
}

}  // namespace
}  // namespace weft
