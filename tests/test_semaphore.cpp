// Semaphore: counting, bounded concurrency, FIFO hand-off, plain threads,
// interruption (an interrupted waiter takes no permit; finalizers release
// held permits), destruction.
#include "support/scale.hpp"
#include "support/timed_wait.hpp"
#include "support/weft_test.hpp"

#include <weft/deferred.hpp>
#include <weft/semaphore.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
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
          SemaphorePermit permit(s);
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
      SemaphorePermit permit(s);
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
  constexpr int kRounds = test::race_rounds(2000);
  int acquired = 0, left = 0;
  for (int i = 0; i < kRounds; ++i) {
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
  EXPECT_EQ(acquired + left, kRounds);
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
  for (int i = 0; i < test::race_rounds(1000); ++i) {
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

// ---------------------------------------------------------------------------
// Timed waits and SemaphorePermit

using namespace std::chrono_literals;

TEST_P(SemaphoreTest, test_semaphore_try_acquire_for_times_out) {
  Exit<void> e = run([] {
    Semaphore s(0);
    const Deadline d = this_fiber::now() + test::kShortWait;
    EXPECT_FALSE(s.try_acquire_until(d));
    EXPECT_GE(this_fiber::now(), d);  // it waited for the deadline
    EXPECT_FALSE(s.try_acquire_for(test::kShortWait));
    EXPECT_EQ(s.available(), 0u);
    EXPECT_EQ(s.waiters(), 0u);
    s.release();  // still works: counted, not handed to a departed waiter
    EXPECT_EQ(s.available(), 1u);
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(SemaphoreTest, test_semaphore_try_acquire_for_succeeds_before_the_deadline) {
  Exit<void> e = run([] {
    Semaphore s(0);
    Fiber<bool> waiter = fork([&] { return s.try_acquire_for(test::kForever); });
    wait_for_waiters(s, 1);
    s.release();
    EXPECT_TRUE(waiter.join());
    EXPECT_EQ(s.available(), 0u);  // handed over, not counted
    EXPECT_EQ(s.waiters(), 0u);
    Semaphore free(1);
    EXPECT_TRUE(free.try_acquire_for(0ns));  // available: no wait needed
  });
  EXPECT_TRUE(e.ok()) << e;
}

// A deadline already passed does not park: a fiber forked before the call
// cannot run during it on one worker (fork never switches), so it would
// have run only if the call had parked.
TEST_P(SemaphoreTest, test_semaphore_expired_deadline_does_not_park) {
  Exit<void> e = run([this] {
    Semaphore s(0);
    std::atomic<bool> other_ran{false};
    Fiber<void> other = fork([&] { other_ran = true; });
    EXPECT_FALSE(s.try_acquire_until(this_fiber::now() - 1s));
    EXPECT_FALSE(s.try_acquire_for(-1s));
    if (workers() == 1) {
      EXPECT_FALSE(other_ran.load());
    }
    EXPECT_EQ(s.waiters(), 0u);
    Semaphore one(1);
    EXPECT_TRUE(one.try_acquire_until(Deadline::min()));  // available: taken without waiting
    other.join();
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(SemaphoreTest, test_semaphore_interrupt_during_timed_acquire) {
  Exit<void> e = run([] {
    Semaphore s(0);
    Fiber<bool> waiter = fork([&] { return s.try_acquire_for(1h); });
    test::wait_parked(waiter);
    wait_for_waiters(s, 1);
    EXPECT_TRUE(waiter.interrupt().interrupted());
    EXPECT_EQ(s.waiters(), 0u);
    EXPECT_EQ(s.available(), 0u);
    // Consistent: the next waiter gets the next permit.
    Fiber<void> next = fork([&] { s.acquire(); });
    wait_for_waiters(s, 1);
    s.release();
    next.join();
    EXPECT_EQ(s.available(), 0u);
    // A pending interrupt on entry throws even with a permit free.
    Semaphore one(1);
    EXPECT_THROW({ weft::interrupt(); }, Interrupted);
    EXPECT_THROW((void)one.try_acquire_for(1h), Interrupted);
    EXPECT_EQ(one.available(), 1u);
  });
  EXPECT_TRUE(e.interrupted()) << e;  // the self-interrupt above is sticky
}

TEST_P(SemaphoreTest, test_semaphore_timed_acquire_from_plain_threads) {
  Semaphore s(0);
  bool timed_out = true;
  std::thread t([&] { timed_out = !s.try_acquire_for(test::kShortWait); });
  t.join();
  EXPECT_TRUE(timed_out);
  EXPECT_EQ(s.waiters(), 0u);
  bool got = false;
  std::thread waiter([&] { got = s.try_acquire_for(test::kForever); });
  Exit<void> e = run([&] {
    wait_for_waiters(s, 1);
    s.release();
  });
  waiter.join();
  EXPECT_TRUE(e.ok()) << e;
  EXPECT_TRUE(got);
  EXPECT_EQ(s.available(), 0u);
  EXPECT_EQ(s.waiters(), 0u);
}

// A timed-out waiter that is still linked is skipped: release() hands the
// permit to the next waiter instead of losing it.
TEST_P(SemaphoreTest, test_semaphore_timed_out_waiter_does_not_take_a_wake_up) {
  Exit<void> e = run([] {
    Semaphore s(0);
    Fiber<bool> timed = fork([&] { return s.try_acquire_for(test::kShortWait); });
    wait_for_waiters(s, 1);
    Fiber<void> patient = fork([&] { s.acquire(); });
    test::wait_parked(patient);
    EXPECT_FALSE(timed.join());
    s.release();
    patient.join();
    EXPECT_EQ(s.available(), 0u);
    EXPECT_EQ(s.waiters(), 0u);
  });
  EXPECT_TRUE(e.ok()) << e;
}

// The wake-up races the deadline (deterministic schedules from many seeds):
// whoever wins, every permit is accounted for and the untimed waiter behind
// the timed one is never skipped.
TEST(SemaphoreRace, test_semaphore_release_races_the_deadline) {
  int got_count = 0, timed_out_count = 0;
  for (std::uint64_t seed = 1; seed <= test::kRaceSeeds; ++seed) {
    Runtime rt(test::race_options(seed));
    Exit<std::pair<bool, std::size_t>> e = rt.block_on([seed] {
      Semaphore s(0);
      const Deadline d = this_fiber::now() + test::race_deadline_us(seed);
      Fiber<bool> timed = fork([&] { return s.try_acquire_until(d); });
      Fiber<void> patient = fork([&] { s.acquire(); });
      Fiber<void> releaser = fork([&] {
        for (int i = 0; i < test::race_delay_steps(seed); ++i) this_fiber::yield();
        s.release(2);
      });
      releaser.join();
      patient.join();  // never stranded by the timed waiter
      const bool got = timed.join();
      EXPECT_EQ(s.waiters(), 0u);
      return std::pair{got, s.available()};
    });
    ASSERT_TRUE(e.ok()) << "seed " << seed << " " << e;
    auto [got, available] = e.value();
    EXPECT_EQ((got ? 1u : 0u) + available, 1u) << "seed " << seed;
    (got ? got_count : timed_out_count)++;
  }
  // Both sides of the race happened: the test exercised it.
  EXPECT_GT(got_count, 0);
  EXPECT_GT(timed_out_count, 0);
  RecordProperty("got", got_count);
  RecordProperty("timed_out", timed_out_count);
}

TEST_P(SemaphoreTest, test_semaphore_permit_guard) {
  Exit<void> e = run([] {
    Semaphore s(2);
    {
      SemaphorePermit a(s);
      EXPECT_TRUE(a.owns());
      EXPECT_EQ(s.available(), 1u);
      SemaphorePermit b(s, std::try_to_lock);
      EXPECT_TRUE(b.owns());
      SemaphorePermit c(s, std::try_to_lock);
      EXPECT_FALSE(c.owns());
      EXPECT_FALSE(static_cast<bool>(c));
      b.release();
      EXPECT_FALSE(b.owns());
      EXPECT_EQ(s.available(), 1u);
      b.release();  // no-op
      EXPECT_EQ(s.available(), 1u);
      SemaphorePermit moved(std::move(a));
      EXPECT_FALSE(a.owns());  // NOLINT(bugprone-use-after-move): moved-from is documented
      EXPECT_TRUE(moved.owns());
      EXPECT_EQ(s.available(), 1u);
      s.acquire();
      SemaphorePermit adopted(s, std::adopt_lock);
      EXPECT_EQ(s.available(), 0u);
      c = std::move(adopted);  // c owned nothing: nothing released
      EXPECT_TRUE(c.owns());
      EXPECT_EQ(s.available(), 0u);
    }
    EXPECT_EQ(s.available(), 2u);  // moved and c released theirs
  });
  EXPECT_TRUE(e.ok()) << e;
}

// An interrupted permit guard constructor takes nothing (there is nothing to
// release), and a guard held by an interrupted fiber releases its permit.
TEST_P(SemaphoreTest, test_semaphore_permit_guard_and_interrupts) {
  Exit<void> e = run([] {
    Semaphore s(1);
    Deferred<void> never;
    Fiber<void> holder = fork([&] {
      SemaphorePermit permit(s);
      never.await();
    });
    while (never.waiters() < 1) this_fiber::yield();
    Fiber<void> blocked = fork([&] { SemaphorePermit permit(s); });
    wait_for_waiters(s, 1);
    EXPECT_TRUE(blocked.interrupt().interrupted());
    EXPECT_EQ(s.available(), 0u);
    EXPECT_TRUE(holder.interrupt().interrupted());
    EXPECT_EQ(s.available(), 1u);
  });
  EXPECT_TRUE(e.ok()) << e;
}

}  // namespace
}  // namespace weft
