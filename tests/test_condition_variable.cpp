// ConditionVariable: producer/consumer, predicates without spurious
// wake-ups, notify_one/notify_all counts and order, deadlines, interruption
// (the lock is held again before Interrupted leaves wait(); a notification
// racing an interrupt is never lost), waits between registering and parking,
// plain threads, std::mutex, misuse and destruction; deterministic races of
// a notification against a deadline and against an interrupt.
#include "support/scale.hpp"
#include "support/timed_wait.hpp"
#include "support/weft_test.hpp"

#include <weft/condition_variable.hpp>
#include <weft/deferred.hpp>
#include <weft/latch.hpp>
#include <weft/mutex.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace weft {
namespace {

using namespace std::chrono_literals;
using test::RuntimeTest;

class ConditionVariableTest : public RuntimeTest {};
WEFT_RUNTIME_TEST_SUITE(ConditionVariableTest);

// wait_for_waiters() yields until `n` waits are registered on cv (arrived or parked).
void wait_for_waiters(const ConditionVariable& cv, std::size_t n) {
  while (cv.waiters() < n) this_fiber::yield();
}

TEST_P(ConditionVariableTest, test_condition_variable_producer_consumer) {
  Exit<long> e = run([] {
    constexpr std::size_t kCapacity = 4;
    constexpr int kProducers = 3, kConsumers = 3, kItems = 500;
    Mutex m;
    ConditionVariable not_empty, not_full;
    std::deque<int> queue;  // guarded by m (TSan checks it)
    int producers_left = kProducers;
    std::vector<Fiber<void>> producers;
    for (int p = 0; p < kProducers; ++p)
      producers.push_back(fork([&] {
        for (int i = 1; i <= kItems; ++i) {
          std::unique_lock lk(m);
          not_full.wait(lk, [&] { return queue.size() < kCapacity; });
          EXPECT_TRUE(lk.owns_lock());
          queue.push_back(i);
          lk.unlock();
          not_empty.notify_one();  // after unlocking
        }
        std::lock_guard g(m);
        if (--producers_left == 0) not_empty.notify_all();  // under the lock
      }));
    std::vector<Fiber<long>> consumers;
    for (int c = 0; c < kConsumers; ++c)
      consumers.push_back(fork([&] {
        long sum = 0;
        std::unique_lock lk(m);
        for (;;) {
          not_empty.wait(lk, [&] { return !queue.empty() || producers_left == 0; });
          if (queue.empty()) return sum;
          EXPECT_LE(queue.size(), kCapacity);
          sum += queue.front();
          queue.pop_front();
          not_full.notify_one();  // under the lock
        }
      }));
    for (auto& p : producers) p.join();
    long total = 0;
    for (auto& c : consumers) total += c.join();
    EXPECT_EQ(not_empty.waiters(), 0u);
    EXPECT_EQ(not_full.waiters(), 0u);
    return total;
  });
  EXPECT_EQ(e.value(), 3L * 500 * 501 / 2);
}

// wait(lock, pred) re-checks pred once per notification and at no other
// time: a spurious wake-up would show as an extra evaluation.
TEST_P(ConditionVariableTest, test_condition_variable_predicate_wait_has_no_spurious_wakeups) {
  Exit<int> e = run([] {
    Mutex m;
    ConditionVariable cv;
    bool ready = false;   // guarded by m
    int evaluations = 0;  // guarded by m
    Fiber<void> waiter = fork([&] {
      std::unique_lock lk(m);
      cv.wait(lk, [&] {
        ++evaluations;
        return ready;
      });
      EXPECT_TRUE(lk.owns_lock());
      EXPECT_EQ(m.owner(), this_fiber::id());
    });
    for (int i = 1; i <= 3; ++i) {
      wait_for_waiters(cv, 1);  // registered with pred() false
      {
        std::lock_guard g(m);
        EXPECT_EQ(evaluations, i);
      }
      cv.notify_one();  // pred() still false: it waits again
      EXPECT_EQ(cv.waiters(), 0u);
    }
    wait_for_waiters(cv, 1);
    {
      std::lock_guard g(m);
      ready = true;
    }
    cv.notify_all();
    waiter.join();
    return evaluations;
  });
  EXPECT_EQ(e.value(), 5);  // the first check, three notifications, the last one
}

TEST_P(ConditionVariableTest, test_condition_variable_notify_one_wakes_exactly_one_oldest_first) {
  Exit<void> e = run([] {
    Mutex m;
    ConditionVariable cv;
    std::vector<int> woke;  // guarded by m
    std::vector<Fiber<void>> fs;
    for (int i = 0; i < 4; ++i) {
      fs.push_back(fork([&, i] {
        std::unique_lock lk(m);
        cv.wait(lk);
        woke.push_back(i);
      }));
      test::wait_parked(fs.back());  // parked in order 0, 1, 2, 3
    }
    EXPECT_EQ(cv.waiters(), 4u);
    cv.notify_one();
    EXPECT_EQ(cv.waiters(), 3u);  // one claimed, the other three untouched
    fs[0].join();                 // the oldest
    {
      std::lock_guard g(m);
      EXPECT_EQ(woke, std::vector<int>{0});
    }
    EXPECT_EQ(cv.waiters(), 3u);  // still nobody else notified
    for (int i = 1; i < 4; ++i) EXPECT_FALSE(fs[i].done());
    cv.notify_all();
    EXPECT_EQ(cv.waiters(), 0u);
    for (auto& f : fs) f.join();
    std::lock_guard g(m);
    EXPECT_EQ(woke.size(), 4u);
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(ConditionVariableTest, test_condition_variable_notify_all_wakes_all) {
  Exit<int> e = run([] {
    Mutex m;
    ConditionVariable cv;
    int woke = 0;  // guarded by m
    std::vector<Fiber<void>> fs;
    for (int i = 0; i < 16; ++i)
      fs.push_back(fork([&] {
        std::unique_lock lk(m);
        cv.wait(lk);
        ++woke;
      }));
    wait_for_waiters(cv, 16);
    cv.notify_all();
    EXPECT_EQ(cv.waiters(), 0u);
    for (auto& f : fs) f.join();
    cv.notify_all();  // nobody waits: a no-op
    std::lock_guard g(m);
    return woke;
  });
  EXPECT_EQ(e.value(), 16);
}

TEST_P(ConditionVariableTest, test_condition_variable_notify_without_waiters_is_not_remembered) {
  Exit<void> e = run([] {
    Mutex m;
    ConditionVariable cv;
    cv.notify_one();
    cv.notify_all();
    std::unique_lock lk(m);
    EXPECT_EQ(cv.wait_for(lk, test::kShortWait), std::cv_status::timeout);
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(ConditionVariableTest, test_condition_variable_wait_until_times_out_with_lock_held) {
  Exit<void> e = run([] {
    Mutex m;
    ConditionVariable cv;
    std::unique_lock lk(m);
    const Deadline d = this_fiber::now() + test::kShortWait;
    EXPECT_EQ(cv.wait_until(lk, d), std::cv_status::timeout);
    EXPECT_GE(this_fiber::now(), d);  // it waited for the deadline
    EXPECT_TRUE(lk.owns_lock());
    EXPECT_EQ(m.owner(), this_fiber::id());
    EXPECT_EQ(cv.waiters(), 0u);
    EXPECT_EQ(cv.wait_for(lk, test::kShortWait), std::cv_status::timeout);
    EXPECT_FALSE(cv.wait_for(lk, test::kShortWait, [] { return false; }));
    EXPECT_TRUE(cv.wait_for(lk, 0ns, [] { return true; }));  // true at once: no wait
    // A deadline already passed does not park; the lock is held again.
    EXPECT_EQ(cv.wait_until(lk, this_fiber::now() - 1s), std::cv_status::timeout);
    EXPECT_FALSE(cv.wait_until(lk, this_fiber::now() - 1s, [] { return false; }));
    EXPECT_EQ(m.owner(), this_fiber::id());
    EXPECT_EQ(cv.waiters(), 0u);
  });
  EXPECT_TRUE(e.ok()) << e;
}

// The setter can only take the mutex while we wait: wait_for() released it.
TEST_P(ConditionVariableTest, test_condition_variable_wait_for_notified_before_deadline) {
  Exit<void> e = run([] {
    Mutex m;
    ConditionVariable cv;
    bool ready = false;  // guarded by m
    std::unique_lock lk(m);
    Fiber<void> setter = fork([&] {
      std::lock_guard g(m);
      ready = true;
      cv.notify_one();
    });
    EXPECT_TRUE(cv.wait_for(lk, test::kForever, [&] { return ready; }));
    EXPECT_TRUE(lk.owns_lock());
    EXPECT_EQ(m.owner(), this_fiber::id());
    lk.unlock();
    setter.join();
    // The untimed std::unique_lock<weft::Mutex> and weft::Mutex forms too.
    Fiber<void> waiter = fork([&] {
      m.lock();
      EXPECT_EQ(cv.wait_for(m, test::kForever), std::cv_status::no_timeout);
      EXPECT_EQ(m.owner(), this_fiber::id());
      m.unlock();
    });
    test::wait_parked(waiter);
    cv.notify_one();
    waiter.join();
  });
  EXPECT_TRUE(e.ok()) << e;
}

// An interrupt ends the wait, and Interrupted leaves wait() only once the
// lock is held again, even while another fiber holds it: the re-lock is
// masked, so the pending interrupt cannot skip it.
TEST_P(ConditionVariableTest, test_condition_variable_interrupt_reacquires_lock_before_throwing) {
  Exit<void> e = run([] {
    Mutex m;
    ConditionVariable cv;
    Latch caught(1);
    Deferred<void> release;
    std::atomic<bool> owned_in_catch{false};
    Fiber<void> waiter = fork([&] {
      std::unique_lock lk(m);
      try {
        cv.wait(lk);
        ADD_FAILURE() << "nobody notified";
      } catch (const Interrupted&) {
        owned_in_catch = lk.owns_lock() && m.owner() == this_fiber::id();
        caught.count_down();
        release.await();  // a handler runs uninterruptibly, holding the lock
        throw;
      }
    });
    test::wait_parked(waiter);
    EXPECT_TRUE(m.try_lock());  // wait() released it
    waiter.interrupt_fork();    // ends the wait; its re-lock now waits for us
    test::yield_until([&] { return m.waiters() == 1 || waiter.done(); });
    ASSERT_FALSE(waiter.done()) << "Interrupted escaped wait() without the lock";
    EXPECT_EQ(caught.count(), 1);
    m.unlock();  // hands the mutex to the waiter
    caught.wait();
    EXPECT_TRUE(owned_in_catch.load());
    EXPECT_EQ(m.owner(), waiter.id());
    Fiber<bool> other = fork([&] { return m.try_lock(); });
    EXPECT_FALSE(other.join());
    release.succeed();
    Exit<void> we = waiter.await();
    EXPECT_TRUE(we.interrupted()) << we;
    EXPECT_EQ(cv.waiters(), 0u);
    EXPECT_TRUE(m.try_lock());  // the unwinding unique_lock released it
    m.unlock();
  });
  EXPECT_TRUE(e.ok()) << e;
}

// An interrupt pending on entry throws before the lock is released.
TEST_P(ConditionVariableTest, test_condition_variable_interrupt_pending_on_entry) {
  std::atomic<bool> caught{false};
  Exit<void> e = run([&] {
    Mutex m;
    ConditionVariable cv;
    std::unique_lock lk(m);
    {
      Uninterruptible mask;
      interrupt();  // recorded, delivered at the next yield point
    }
    try {
      cv.wait(lk);
      ADD_FAILURE() << "wait() with an interrupt pending returned";
    } catch (const Interrupted&) {
      caught = true;
      EXPECT_TRUE(lk.owns_lock());
      EXPECT_EQ(m.owner(), this_fiber::id());
      EXPECT_EQ(cv.waiters(), 0u);
    }
  });
  EXPECT_TRUE(caught.load());
  EXPECT_TRUE(e.interrupted()) << e;  // sticky
}

// notify_one() meets a waiter whose wait an interrupter already claimed (on
// one worker it is still queued: it has not run since): the notification
// goes to the next waiter instead of being lost.
TEST_P(ConditionVariableTest, test_condition_variable_notify_one_passes_over_interrupted_waiter) {
  Exit<void> e = run([this] {
    Mutex m;
    ConditionVariable cv;
    std::atomic<bool> a_returned{false}, b_returned{false};
    Fiber<void> a = fork([&] {
      std::unique_lock lk(m);
      cv.wait(lk);
      a_returned = true;
    });
    test::wait_parked(a);
    Fiber<void> b = fork([&] {
      std::unique_lock lk(m);
      cv.wait(lk);
      b_returned = true;
    });
    test::wait_parked(b);
    a.interrupt_fork();  // claims a's wait; no yield point until the notify
    if (workers() == 1) {
      EXPECT_EQ(cv.waiters(), 2u);  // a is still queued
    }
    cv.notify_one();
    if (workers() == 1) {
      EXPECT_EQ(cv.waiters(), 1u);  // b notified, a leaving
    }
    Exit<void> ea = a.await();
    EXPECT_TRUE(ea.interrupted()) << ea;
    EXPECT_FALSE(a_returned.load());
    b.join();
    EXPECT_TRUE(b_returned.load());
    EXPECT_EQ(cv.waiters(), 0u);
  });
  EXPECT_TRUE(e.ok()) << e;
}

// A waiter that a notification claimed, then interrupted before it runs
// again, keeps the notification: wait() returns normally with the lock (the
// masked re-lock does not throw) and the interrupt waits for the next yield
// point. Throwing there instead would lose the notification: nobody else
// got it.
TEST_P(ConditionVariableTest, test_condition_variable_notified_waiter_interrupted_keeps_it) {
  Exit<void> e = run([] {
    Mutex m;
    ConditionVariable cv;
    std::atomic<bool> a_returned{false}, a_owned{false}, b_returned{false};
    Fiber<void> a = fork([&] {
      std::unique_lock lk(m);
      cv.wait(lk);
      a_returned = true;
      a_owned = m.owner() == this_fiber::id();
      this_fiber::check_interrupt();  // the next yield point delivers it
      ADD_FAILURE() << "the interrupt was not delivered";
    });
    test::wait_parked(a);
    Fiber<void> b = fork([&] {
      std::unique_lock lk(m);
      cv.wait(lk);
      b_returned = true;
    });
    test::wait_parked(b);
    cv.notify_one();     // claims a, the oldest
    a.interrupt_fork();  // too late for a's wait
    Exit<void> ea = a.await();
    EXPECT_TRUE(ea.interrupted()) << ea;
    EXPECT_TRUE(a_returned.load());
    EXPECT_TRUE(a_owned.load());
    EXPECT_FALSE(b_returned.load());
    EXPECT_EQ(cv.waiters(), 1u);  // b was not notified
    cv.notify_one();
    b.join();
    EXPECT_TRUE(b_returned.load());
  });
  EXPECT_TRUE(e.ok()) << e;
}

// GatedMutex is a weft::Mutex whose first unlock() then stops (masked) until
// its gate opens: it holds a waiter between registering and parking.
class GatedMutex {
 public:
  void lock() { m_.lock(); }
  void unlock() {
    const bool gated = std::exchange(gated_, false);
    m_.unlock();
    if (gated) {
      reached_.count_down();
      Uninterruptible mask;
      gate_.await();
    }
  }
  Mutex& mutex() { return m_; }
  Latch& reached() { return reached_; }
  Deferred<void>& gate() { return gate_; }

 private:
  Mutex m_;
  bool gated_ = true;  // guarded by m_
  Latch reached_{1};
  Deferred<void> gate_;
};

// A notification that finds a wait registered but not parked yet is kept
// for it (it does not park); an interrupt then waits for the next yield point.
TEST_P(ConditionVariableTest, test_condition_variable_notify_between_register_and_park) {
  enum class Notify { none, one, all };
  for (Notify notify : {Notify::none, Notify::one, Notify::all}) {
    Exit<void> e = run([notify] {
      GatedMutex gm;
      ConditionVariable cv;
      std::optional<std::cv_status> status;
      std::atomic<bool> held{false};
      Fiber<void> w = fork([&] {
        std::unique_lock lk(gm);
        try {
          status = cv.wait_for(lk, test::kForever);
        } catch (const Interrupted&) {
          held = gm.mutex().owner() == this_fiber::id();
          throw;
        }
        held = gm.mutex().owner() == this_fiber::id();
      });
      gm.reached().wait();  // w registered and released the lock, not parked
      EXPECT_EQ(cv.waiters(), 1u);
      if (notify == Notify::one) cv.notify_one();
      if (notify == Notify::all) cv.notify_all();
      EXPECT_EQ(cv.waiters(), notify == Notify::none ? 1u : 0u);
      w.interrupt_fork();  // pending: w is masked at the gate
      gm.gate().succeed();
      Exit<void> we = w.await();
      EXPECT_TRUE(we.interrupted()) << we;  // at wait() or at the end of its body
      EXPECT_TRUE(held.load());
      if (notify == Notify::none) {
        EXPECT_FALSE(status.has_value());  // the interrupt ended the wait
      } else {
        EXPECT_EQ(status, std::cv_status::no_timeout);  // the notification won
      }
      EXPECT_EQ(cv.waiters(), 0u);
    });
    EXPECT_TRUE(e.ok()) << "notify=" << static_cast<int>(notify) << " " << e;
  }
}

TEST_P(ConditionVariableTest, test_condition_variable_plain_thread_waiters) {
  Mutex m;
  ConditionVariable cv;
  int stage = 0;  // guarded by m
  std::thread t([&] {
    std::unique_lock lk(m);
    cv.wait(lk, [&] { return stage == 1; });  // blocks the thread
    EXPECT_EQ(m.owner(), this_fiber::id());
    stage = 2;
    lk.unlock();
    cv.notify_all();
  });
  Exit<void> e = run([&] {
    wait_for_waiters(cv, 1);  // the thread waits (or has not checked yet)
    {
      std::lock_guard g(m);
      stage = 1;
    }
    cv.notify_all();
    std::unique_lock lk(m);
    cv.wait(lk, [&] { return stage == 2; });  // the thread notifies a fiber
  });
  t.join();
  EXPECT_TRUE(e.ok()) << e;
  std::unique_lock lk(m);  // a timed wait from this plain thread
  EXPECT_EQ(cv.wait_for(lk, test::kShortWait), std::cv_status::timeout);
  EXPECT_TRUE(lk.owns_lock());
  EXPECT_EQ(m.owner(), this_fiber::id());
  EXPECT_EQ(cv.waiters(), 0u);
}

// std::mutex is fine while no yield point runs with it held (see the header).
TEST_P(ConditionVariableTest, test_condition_variable_with_std_mutex) {
  Exit<long> e = run([] {
    std::mutex mu;
    ConditionVariable cv;
    std::deque<int> queue;  // guarded by mu
    bool done = false;      // guarded by mu
    std::vector<Fiber<long>> consumers;
    for (int c = 0; c < 3; ++c)
      consumers.push_back(fork([&] {
        long sum = 0;
        std::unique_lock lk(mu);
        for (;;) {
          cv.wait(lk, [&] { return !queue.empty() || done; });
          if (queue.empty()) return sum;
          sum += queue.front();
          queue.pop_front();
        }
      }));
    for (int i = 1; i <= 1000; ++i) {
      {
        std::lock_guard g(mu);
        queue.push_back(i);
      }
      cv.notify_one();
      if (i % 50 == 0) this_fiber::yield();  // never with mu held
    }
    {
      std::lock_guard g(mu);
      done = true;
    }
    cv.notify_all();
    long total = 0;
    for (auto& c : consumers) total += c.join();
    return total;
  });
  EXPECT_EQ(e.value(), 1000L * 1001 / 2);
}

TEST_P(ConditionVariableTest, test_condition_variable_wait_without_the_lock_throws) {
  Exit<void> e = run([] {
    Mutex m;
    ConditionVariable cv;
    std::unique_lock lk(m, std::defer_lock);
    EXPECT_THROW(cv.wait(lk), std::system_error);  // std::unique_lock::unlock()
    EXPECT_FALSE(lk.owns_lock());
    EXPECT_EQ(cv.waiters(), 0u);  // not registered
    EXPECT_TRUE(m.try_lock());
    m.unlock();
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(ConditionVariableTest,
       test_condition_variable_destroyed_with_waiters_wakes_them_with_error) {
  Exit<int> e = run([] {
    auto owner = std::make_unique<ConditionVariable>();
    ConditionVariable* cv = owner.get();
    Mutex m;
    std::atomic<int> errors{0};
    std::vector<Fiber<void>> fs;
    for (int i = 0; i < 3; ++i) {
      fs.push_back(fork([cv, &m, &errors] {
        std::unique_lock lk(m);
        try {
          cv->wait(lk);
        } catch (const std::logic_error& x) {
          if (std::string(x.what()).find("weft::ConditionVariable destroyed") !=
                  std::string::npos &&
              lk.owns_lock() && m.owner() == this_fiber::id())
            ++errors;
        }
      }));
      test::wait_parked(fs.back());
    }
    owner.reset();
    for (auto& f : fs) f.join();
    return errors.load();
  });
  EXPECT_EQ(e.value(), 3);
}

// As std::condition_variable: once every waiter is notified the condition
// variable may be destroyed, before they return (ASan checks that a
// notified waiter no longer touches it).
TEST_P(ConditionVariableTest, test_condition_variable_destroy_right_after_notify_all) {
  for (int i = 0; i < test::race_rounds(300); ++i) {
    Exit<void> e = run([i] {
      auto owner = std::make_unique<ConditionVariable>();
      ConditionVariable* cv = owner.get();
      Mutex m;
      bool ready = false;  // guarded by m
      std::vector<Fiber<void>> fs;
      for (int f = 0; f < 3; ++f)
        fs.push_back(fork([cv, &m, &ready] {
          std::unique_lock lk(m);
          cv->wait(lk, [&] { return ready; });
        }));
      if (i % 2 == 0) wait_for_waiters(*cv, 3);
      {
        std::lock_guard g(m);
        ready = true;
      }
      cv->notify_all();
      owner.reset();
      for (auto& f : fs) f.join();
    });
    ASSERT_TRUE(e.ok()) << "iteration " << i << ": " << e;
  }
}

// ---------------------------------------------------------------------------
// Deterministic races (many seeds): a notification against a deadline and
// against an interrupt. Each notify_one() reaches exactly one waiter, and a
// waiter that could not take it (timed out, interrupted) passes it on.

// ended() is true once f ends; on a deterministic runtime a stuck fiber makes
// the virtual clock jump to the deadline instead of hanging the test.
template <class T>
bool ended(Fiber<T>& f) {
  return f.await_until(this_fiber::now() + 1h).has_value();
}

TEST(ConditionVariableRace, test_condition_variable_notify_races_the_deadline) {
  int notified = 0, timed_out = 0;
  for (std::uint64_t seed = 1; seed <= test::kRaceSeeds; ++seed) {
    Runtime rt(test::race_options(seed));
    Exit<bool> e = rt.block_on([seed] {
      Mutex m;
      ConditionVariable cv;
      bool patient_in = false;  // guarded by m
      const Deadline d = this_fiber::now() + test::race_deadline_us(seed);
      Fiber<std::cv_status> timed = fork([&] {
        std::unique_lock lk(m);
        const std::cv_status st = cv.wait_until(lk, d);
        EXPECT_EQ(m.owner(), this_fiber::id());
        return st;
      });
      std::atomic<bool> patient_returned{false};
      Fiber<void> patient = fork([&] {
        std::unique_lock lk(m);
        patient_in = true;  // registered before m is released
        cv.wait(lk);
        patient_returned = true;
      });
      test::yield_until([&] {
        std::lock_guard g(m);
        return patient_in;
      });
      for (int i = 0; i < test::race_delay_steps(seed); ++i) this_fiber::yield();
      cv.notify_one();
      const bool got = timed.join() == std::cv_status::no_timeout;
      if (got) {
        EXPECT_FALSE(patient_returned.load());
        EXPECT_EQ(cv.waiters(), 1u);  // the patient one was not notified
        cv.notify_one();
      }
      const bool patient_ended = ended(patient);
      EXPECT_TRUE(patient_ended) << "the notification was lost";
      if (!patient_ended) (void)patient.interrupt();  // not left waiting on our locals
      EXPECT_EQ(cv.waiters(), 0u);
      return got;
    });
    ASSERT_TRUE(e.ok()) << "seed " << seed << " " << e;
    (e.value() ? notified : timed_out)++;
  }
  EXPECT_GT(notified, 0);
  EXPECT_GT(timed_out, 0);
  RecordProperty("notified", notified);
  RecordProperty("timed_out", timed_out);
}

TEST(ConditionVariableRace, test_condition_variable_notify_one_races_interrupt) {
  int consumed = 0, passed_on = 0;
  for (std::uint64_t seed = 1; seed <= test::kRaceSeeds; ++seed) {
    Runtime rt(test::race_options(seed));
    Exit<bool> e = rt.block_on([seed] {
      Mutex m;
      ConditionVariable cv;
      int registered = 0;  // guarded by m
      std::atomic<bool> a_returned{false}, b_returned{false};
      Fiber<void> a = fork([&] {
        std::unique_lock lk(m);
        ++registered;
        cv.wait(lk);
        a_returned = true;
        EXPECT_EQ(m.owner(), this_fiber::id());
      });
      Fiber<void> b = fork([&] {
        std::unique_lock lk(m);
        ++registered;
        cv.wait(lk);
        b_returned = true;
      });
      test::yield_until([&] {
        std::lock_guard g(m);
        return registered == 2;
      });
      Fiber<void> interrupter = fork([&] {
        for (std::uint64_t i = 0; i < seed % 5; ++i) this_fiber::yield();
        a.interrupt_fork();
      });
      for (int i = 0; i < test::race_delay_steps(seed); ++i) this_fiber::yield();
      cv.notify_one();
      interrupter.join();
      (void)a.await();  // interrupted, at wait() or after it returned
      if (a_returned.load()) {
        EXPECT_FALSE(b_returned.load());
        EXPECT_EQ(cv.waiters(), 1u);  // b was not notified
        cv.notify_one();
      }
      const bool b_ended = ended(b);
      EXPECT_TRUE(b_ended) << "the notification was lost";
      if (!b_ended) (void)b.interrupt();  // not left waiting on our locals
      EXPECT_TRUE(b_returned.load());
      EXPECT_EQ(cv.waiters(), 0u);
      return a_returned.load();
    });
    ASSERT_TRUE(e.ok()) << "seed " << seed << " " << e;
    (e.value() ? consumed : passed_on)++;
  }
  EXPECT_GT(consumed, 0);
  EXPECT_GT(passed_on, 0);
  RecordProperty("consumed", consumed);
  RecordProperty("passed_on", passed_on);
}

}  // namespace
}  // namespace weft
