// Mutex: exclusion, standard lock guards, FIFO hand-off, plain threads,
// interruption (an interrupted waiter never owns it; guards unlock while
// unwinding), misuse and destruction.
#include "support/scale.hpp"
#include "support/timed_wait.hpp"
#include "support/weft_test.hpp"

#include <weft/deferred.hpp>
#include <weft/latch.hpp>
#include <weft/mutex.hpp>

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

class MutexTest : public RuntimeTest {};
WEFT_RUNTIME_TEST_SUITE(MutexTest);

// wait_for_waiters() yields until `n` fibers or threads wait on p.
template <class P>
void wait_for_waiters(const P& p, std::size_t n) {
  while (p.waiters() < n) this_fiber::yield();
}

TEST_P(MutexTest, test_mutex_lock_unlock_try_lock) {
  Exit<void> e = run([] {
    Mutex m;
    EXPECT_EQ(m.owner(), FiberId());
    m.lock();
    EXPECT_EQ(m.owner(), this_fiber::id());
    Fiber<bool> other = fork([&] { return m.try_lock(); });
    EXPECT_FALSE(other.join());
    m.unlock();
    EXPECT_TRUE(m.try_lock());
    m.unlock();
    EXPECT_EQ(m.owner(), FiberId());
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(MutexTest, test_mutex_works_with_standard_guards) {
  Exit<void> e = run([] {
    Mutex a, b;
    { std::lock_guard g(a); }
    {
      std::unique_lock u(a);
      EXPECT_TRUE(u.owns_lock());
      u.unlock();
      EXPECT_TRUE(u.try_lock());
    }
    { std::scoped_lock both(a, b); }  // std::lock's try_lock/back-off protocol
    EXPECT_TRUE(a.try_lock());
    EXPECT_TRUE(b.try_lock());
    a.unlock();
    b.unlock();
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(MutexTest, test_mutex_excludes_across_yields) {
  Exit<long> e = run([] {
    Mutex m;
    long counter = 0;  // plain: the mutex is the only protection (TSan checks it)
    int inside = 0;
    std::vector<Fiber<void>> fs;
    for (int f = 0; f < 8; ++f)
      fs.push_back(fork([&] {
        for (int i = 0; i < 200; ++i) {
          std::lock_guard g(m);
          EXPECT_EQ(++inside, 1);
          const long seen = counter;
          if (i % 5 == 0) this_fiber::yield();  // hold it across a yield point
          counter = seen + 1;
          --inside;
        }
      }));
    for (auto& f : fs) f.join();
    return counter;
  });
  EXPECT_EQ(e.value(), 1600);
}

TEST_P(MutexTest, test_mutex_plain_threads_and_fibers) {
  Mutex m;
  long counter = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        std::lock_guard g(m);
        ++counter;
      }
    });
  std::vector<Fiber<void>> fibers;
  for (int f = 0; f < 2; ++f)
    fibers.push_back(rt().spawn([&] {
      for (int i = 0; i < 2000; ++i) {
        std::lock_guard g(m);
        ++counter;
        if (i % 100 == 0) this_fiber::yield();
      }
    }));
  for (auto& t : threads) t.join();
  for (auto& f : fibers) f.join();
  std::lock_guard g(m);
  EXPECT_EQ(counter, 8000);
}

TEST_P(MutexTest, test_mutex_hands_off_in_fifo_order) {
  Exit<std::vector<int>> e = run([] {
    Mutex m;
    std::vector<int> order;  // guarded by m
    m.lock();
    std::vector<Fiber<void>> fs;
    for (int i = 0; i < 4; ++i) {
      fs.push_back(fork([&, i] {
        std::lock_guard g(m);
        order.push_back(i);
      }));
      wait_for_waiters(m, static_cast<std::size_t>(i + 1));  // parked in order
    }
    EXPECT_FALSE(m.try_lock());  // owned (by us): try_lock fails
    m.unlock();                  // hands it to waiter 0, which hands it to 1, ...
    for (auto& f : fs) f.join();
    std::lock_guard g(m);
    return order;
  });
  EXPECT_EQ(e.value(), (std::vector<int>{0, 1, 2, 3}));
}

TEST_P(MutexTest, test_mutex_unlock_hands_ownership_to_waiter) {
  Exit<void> e = run([] {
    Mutex m;
    m.lock();
    Deferred<void> release;
    Fiber<FiberId> waiter = fork([&] {
      m.lock();
      FiberId owner = m.owner();
      release.await();
      m.unlock();
      return owner;
    });
    wait_for_waiters(m, 1);
    m.unlock();
    // Handed over: nobody can barge in between, though the waiter may not run yet.
    EXPECT_FALSE(m.try_lock());
    EXPECT_EQ(m.owner(), waiter.id());
    release.succeed();
    EXPECT_EQ(waiter.join(), waiter.id());
    EXPECT_TRUE(m.try_lock());
    m.unlock();
  });
  EXPECT_TRUE(e.ok()) << e;
}

// An interrupted waiter (parked or not yet) never becomes the owner.
TEST_P(MutexTest, test_mutex_interrupted_waiter_takes_nothing) {
  for (bool parked_first : {false, true}) {
    Exit<void> e = run([parked_first] {
      Mutex m;
      m.lock();
      std::atomic<bool> locked{false};
      Fiber<void> waiter = fork([&] {
        std::lock_guard g(m);
        locked = true;
      });
      if (parked_first) wait_for_waiters(m, 1);
      Exit<void> we = waiter.interrupt();
      EXPECT_TRUE(we.interrupted()) << we;
      EXPECT_FALSE(locked.load());
      EXPECT_EQ(m.waiters(), 0u);
      m.unlock();
      EXPECT_TRUE(m.try_lock());  // free, not handed to the dead waiter
      m.unlock();
    });
    EXPECT_TRUE(e.ok()) << "parked_first=" << parked_first << " " << e;
  }
}

// A guard held by an interrupted fiber unlocks while the fiber unwinds.
TEST_P(MutexTest, test_mutex_guard_released_by_interrupted_fiber) {
  Exit<void> e = run([] {
    Mutex m;
    Deferred<void> never;
    std::atomic<bool> holding{false};
    Fiber<void> holder = fork([&] {
      std::lock_guard g(m);
      holding = true;
      never.await();  // parked while holding the mutex
    });
    while (!holding.load() || never.waiters() < 1) this_fiber::yield();
    Fiber<void> waiter = fork([&] { std::lock_guard g(m); });
    wait_for_waiters(m, 1);
    EXPECT_TRUE(holder.interrupt().interrupted());
    waiter.join();  // the unwinding guard handed the mutex on
    EXPECT_TRUE(m.try_lock());
    m.unlock();
  });
  EXPECT_TRUE(e.ok()) << e;
}

// unlock() racing the interrupt of the waiter: either the waiter got the
// mutex (and released it), or it did not; the mutex ends up free either way.
TEST_P(MutexTest, test_mutex_unlock_races_waiter_interrupt) {
  constexpr int kRounds = test::race_rounds(2000);
  int acquired = 0, interrupted = 0;
  for (int i = 0; i < kRounds; ++i) {
    Exit<bool> e = run([i] {
      Mutex m;
      m.lock();
      std::atomic<bool> got{false};
      Fiber<void> waiter = fork([&] {
        m.lock();
        got = true;  // no yield point since lock returned: we own it
        m.unlock();
      });
      if (i % 3 != 0) wait_for_waiters(m, 1);
      Fiber<void> interrupter = fork([&] { waiter.interrupt_fork(); });
      if (i % 2 == 0) this_fiber::yield();
      m.unlock();
      interrupter.join();
      (void)waiter.await();  // locked or interrupted: either is fine
      EXPECT_TRUE(m.try_lock()) << "iteration " << i << ": the mutex leaked";
      m.unlock();
      return got.load();
    });
    (e.value() ? acquired : interrupted)++;
  }
  EXPECT_EQ(acquired + interrupted, kRounds);
  RecordProperty("acquired", acquired);
  RecordProperty("interrupted", interrupted);
}

TEST_P(MutexTest, test_mutex_recursive_lock_throws) {
  Exit<void> e = run([] {
    Mutex m;
    std::lock_guard g(m);
    try {
      m.lock();
      ADD_FAILURE() << "locking an owned mutex must throw";
    } catch (const std::logic_error& x) {
      EXPECT_NE(std::string(x.what()).find("weft::Mutex"), std::string::npos) << x.what();
    }
    EXPECT_FALSE(m.try_lock());
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(MutexTest, test_mutex_destroyed_with_waiters_wakes_them_with_error) {
  Exit<int> e = run([] {
    auto owner = std::make_unique<Mutex>();
    Mutex* m = owner.get();
    m->lock();
    std::atomic<int> errors{0};
    std::vector<Fiber<void>> fs;
    for (int i = 0; i < 3; ++i)
      fs.push_back(fork([m, &errors] {
        try {
          m->lock();
        } catch (const std::logic_error& x) {
          if (std::string(x.what()).find("weft::Mutex destroyed") != std::string::npos) ++errors;
        }
      }));
    wait_for_waiters(*m, 3);
    owner.reset();
    for (auto& f : fs) f.join();
    return errors.load();
  });
  EXPECT_EQ(e.value(), 3);
}

// The new owner may destroy the mutex while the unlock() that handed it over
// is still returning (ASan checks that unlock() no longer touches it).
TEST_P(MutexTest, test_mutex_destroy_right_after_lock) {
  for (int i = 0; i < test::race_rounds(1000); ++i) {
    Exit<void> e = run([] {
      auto owner = std::make_unique<Mutex>();
      Mutex* m = owner.get();
      Latch held(1);
      Fiber<void> first = fork([m, &held] {
        m->lock();
        held.count_down();
        this_fiber::yield();
        m->unlock();
      });
      held.wait();
      m->lock();
      m->unlock();
      owner.reset();
      first.join();
    });
    ASSERT_TRUE(e.ok()) << e;
  }
}

// Checked in every build (WEFT_CHECK), not only with WEFT_DEBUG_ASSERTS.
TEST(MutexMisuse, test_mutex_unlock_by_non_owner_asserts) {
  EXPECT_DEATH(
      {
        Runtime rt({.workers = 1});
        Mutex m;
        (void)rt.block_on([&] { m.lock(); });
        (void)rt.block_on([&] { m.unlock(); });
      },
      "weft::Mutex: unlock\\(\\) by");
}

TEST(MutexMisuse, test_mutex_unlock_of_unlocked_asserts) {
  EXPECT_DEATH(
      {
        Mutex m;
        m.unlock();
      },
      "unlock\\(\\) of an unlocked mutex");
}

// ---------------------------------------------------------------------------
// Timed waits

using namespace std::chrono_literals;

TEST_P(MutexTest, test_mutex_try_lock_for_times_out) {
  Exit<void> e = run([] {
    Mutex m;
    m.lock();
    const FiberId me = this_fiber::id();
    Fiber<bool> other = fork([&] {
      const Deadline d = this_fiber::now() + test::kShortWait;
      const bool got = m.try_lock_until(d);
      EXPECT_GE(this_fiber::now(), d);  // it waited for the deadline
      return got || m.try_lock_for(test::kShortWait);
    });
    EXPECT_FALSE(other.join());
    EXPECT_EQ(m.owner(), me);  // unchanged
    EXPECT_EQ(m.waiters(), 0u);
    m.unlock();
    EXPECT_EQ(m.owner(), FiberId());  // not handed to the departed waiter
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(MutexTest, test_mutex_try_lock_for_succeeds_before_the_deadline) {
  Exit<void> e = run([] {
    Mutex m;
    m.lock();
    Fiber<FiberId> other = fork([&] {
      if (!m.try_lock_for(test::kForever)) return FiberId();
      const FiberId owner = m.owner();
      m.unlock();
      return owner;
    });
    wait_for_waiters(m, 1);
    m.unlock();
    EXPECT_EQ(other.join(), other.id());
    EXPECT_EQ(m.waiters(), 0u);
    EXPECT_TRUE(m.try_lock_for(0ns));  // free: no wait needed
    m.unlock();
    // std::unique_lock's timed calls use it (as std::timed_mutex).
    std::unique_lock u(m, std::defer_lock);
    EXPECT_TRUE(u.try_lock_for(1ms));
    u.unlock();
    EXPECT_TRUE(u.try_lock_until(std::chrono::steady_clock::now() + 1ms));
  });
  EXPECT_TRUE(e.ok()) << e;
}

// A deadline already passed does not park (see the semaphore's test).
TEST_P(MutexTest, test_mutex_expired_deadline_does_not_park) {
  Exit<void> e = run([this] {
    Mutex m;
    Fiber<void> holder = fork([&] { m.lock(); });
    holder.join();  // m stays locked by the ended fiber: nobody will unlock it
    std::atomic<bool> other_ran{false};
    Fiber<void> other = fork([&] { other_ran = true; });
    EXPECT_FALSE(m.try_lock_until(this_fiber::now() - 1s));
    EXPECT_FALSE(m.try_lock_for(0ns));
    if (workers() == 1) {
      EXPECT_FALSE(other_ran.load());
    }
    EXPECT_EQ(m.waiters(), 0u);
    other.join();
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(MutexTest, test_mutex_interrupt_during_timed_lock) {
  Exit<void> e = run([] {
    Mutex m;
    m.lock();
    Fiber<bool> waiter = fork([&] { return m.try_lock_for(1h); });
    test::wait_parked(waiter);
    wait_for_waiters(m, 1);
    EXPECT_TRUE(waiter.interrupt().interrupted());
    EXPECT_EQ(m.waiters(), 0u);
    EXPECT_EQ(m.owner(), this_fiber::id());
    // Consistent: unlock() hands the mutex to the next waiter, not the interrupted one.
    Fiber<void> next = fork([&] {
      m.lock();
      m.unlock();
    });
    wait_for_waiters(m, 1);
    m.unlock();
    next.join();
    EXPECT_EQ(m.owner(), FiberId());
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(MutexTest, test_mutex_timed_lock_from_plain_threads) {
  Mutex m;
  Exit<void> e = run([&] {
    m.lock();
    bool timed_out = false;
    std::thread t([&] { timed_out = !m.try_lock_for(test::kShortWait); });
    t.join();  // blocks this worker a few ms: fine for a test
    EXPECT_TRUE(timed_out);
    EXPECT_EQ(m.waiters(), 0u);
    bool got = false;
    std::thread waiter([&] {
      got = m.try_lock_for(test::kForever);
      if (got) m.unlock();
    });
    wait_for_waiters(m, 1);
    m.unlock();
    waiter.join();
    EXPECT_TRUE(got);
    EXPECT_EQ(m.owner(), FiberId());
  });
  EXPECT_TRUE(e.ok()) << e;
}

// The unlock races the timed waiter's deadline (deterministic schedules from
// many seeds): the mutex is handed to exactly one waiter, the untimed one
// behind the timed one is never skipped, and it ends unlocked.
TEST(MutexRace, test_mutex_unlock_races_the_deadline) {
  int got_count = 0, timed_out_count = 0;
  for (std::uint64_t seed = 1; seed <= test::kRaceSeeds; ++seed) {
    Runtime rt(test::race_options(seed));
    Exit<bool> e = rt.block_on([seed] {
      Mutex m;
      m.lock();
      int inside = 0;  // plain: the mutex is the only protection
      const Deadline d = this_fiber::now() + test::race_deadline_us(seed);
      Fiber<bool> timed = fork([&] {
        if (!m.try_lock_until(d)) return false;
        EXPECT_EQ(++inside, 1);
        this_fiber::yield();
        --inside;
        m.unlock();
        return true;
      });
      Fiber<void> patient = fork([&] {
        std::lock_guard g(m);
        EXPECT_EQ(++inside, 1);
        --inside;
      });
      for (int i = 0; i < test::race_delay_steps(seed); ++i) this_fiber::yield();
      m.unlock();
      patient.join();  // never stranded by the timed waiter
      const bool got = timed.join();
      EXPECT_EQ(m.waiters(), 0u);
      EXPECT_EQ(m.owner(), FiberId());
      return got;
    });
    ASSERT_TRUE(e.ok()) << "seed " << seed << " " << e;
    (e.value() ? got_count : timed_out_count)++;
  }
  EXPECT_GT(got_count, 0);
  EXPECT_GT(timed_out_count, 0);
  RecordProperty("got", got_count);
  RecordProperty("timed_out", timed_out_count);
}

}  // namespace
}  // namespace weft
