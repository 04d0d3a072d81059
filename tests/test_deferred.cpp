// Deferred: completion, failure, awaiting from fibers and threads, misuse,
// interruption of awaiters, destruction with awaiters.
#include "support/scale.hpp"
#include "support/timed_wait.hpp"
#include "support/weft_test.hpp"

#include <weft/deferred.hpp>

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

class DeferredTest : public RuntimeTest {};
WEFT_RUNTIME_TEST_SUITE(DeferredTest);

// wait_for_waiters() yields until `n` fibers or threads wait on p.
template <class P>
void wait_for_waiters(const P& p, std::size_t n) {
  while (p.waiters() < n) this_fiber::yield();
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST_P(DeferredTest, test_deferred_succeed_then_await) {
  Exit<int> e = run([] {
    Deferred<int> d;
    EXPECT_FALSE(d.done());
    EXPECT_FALSE(d.poll().has_value());
    d.succeed(42);
    EXPECT_TRUE(d.done());
    std::optional<Exit<int>> p = d.poll();
    EXPECT_TRUE(p.has_value() && p->ok() && p->value() == 42);
    return d.await();
  });
  EXPECT_EQ(e.value(), 42);
}

TEST_P(DeferredTest, test_deferred_await_parks_until_completed_by_fiber) {
  Exit<int> e = run([] {
    Deferred<int> d;
    std::vector<Fiber<int>> awaiters;
    for (int i = 0; i < 5; ++i) awaiters.push_back(fork([&] { return d.await(); }));
    wait_for_waiters(d, 5);  // all parked: the completion must wake them
    Fiber<void> completer = fork([&] { d.succeed(7); });
    completer.join();
    int sum = 0;
    for (auto& a : awaiters) sum += a.join();
    return sum;
  });
  EXPECT_EQ(e.value(), 35);
}

TEST_P(DeferredTest, test_deferred_fail_rethrows_original_exception) {
  Exit<int> e = run([] {
    Deferred<int> d;
    Fiber<int> awaiter = fork([&] { return d.await(); });
    d.fail(std::make_exception_ptr(std::runtime_error("boom")));
    std::optional<Exit<int>> p = d.poll();
    EXPECT_TRUE(p.has_value() && p->failed());
    if (p) {
      const auto* err = p->cause().failure<std::runtime_error>();
      EXPECT_TRUE(err != nullptr && std::string(err->what()) == "boom");
    }
    return awaiter.join();
  });
  ASSERT_TRUE(e.failed());
  const auto* err = e.cause().failure<std::runtime_error>();
  ASSERT_NE(err, nullptr);
  EXPECT_STREQ(err->what(), "boom");
}

TEST_P(DeferredTest, test_deferred_void_succeed_and_fail) {
  Exit<void> e = run([] {
    Deferred<void> ok;
    Fiber<void> a = fork([&] { ok.await(); });
    EXPECT_FALSE(ok.poll().has_value());
    ok.succeed();
    a.join();
    EXPECT_TRUE(ok.poll().has_value() && ok.poll()->ok());

    Deferred<void> bad;
    Fiber<void> b = fork([&] { bad.await(); });
    bad.fail(std::make_exception_ptr(std::out_of_range("nope")));
    EXPECT_THROW(b.join(), std::out_of_range);
    EXPECT_THROW(bad.await(), std::out_of_range);
    EXPECT_TRUE(bad.poll()->failed());
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(DeferredTest, test_deferred_move_only_value_by_reference) {
  Exit<int> e = run([] {
    Deferred<std::unique_ptr<int>> d;
    Fiber<int> a = fork([&] { return *d.await(); });
    d.succeed(std::make_unique<int>(9));
    return a.join() + *d.await();
  });
  EXPECT_EQ(e.value(), 18);
}

TEST_P(DeferredTest, test_deferred_completion_happens_before_await_returns) {
  // Plain data written before succeed() is visible after await() (TSan checks it).
  Exit<long> e = run([] {
    std::vector<long> data;
    Deferred<void> ready;
    Fiber<long> reader = fork([&] {
      ready.await();
      long sum = 0;
      for (long x : data) sum += x;
      return sum;
    });
    Fiber<void> writer = fork([&] {
      for (long i = 1; i <= 100; ++i) data.push_back(i);
      ready.succeed();
    });
    writer.join();
    return reader.join();
  });
  EXPECT_EQ(e.value(), 5050);
}

TEST_P(DeferredTest, test_deferred_plain_thread_awaits_fiber_completes) {
  Deferred<int> d;
  std::atomic<int> got{0};
  std::thread t([&] { got = d.await(); });
  Fiber<void> f = rt().spawn([&] {
    this_fiber::yield();
    d.succeed(11);
  });
  f.join();
  t.join();
  EXPECT_EQ(got.load(), 11);
}

TEST_P(DeferredTest, test_deferred_fiber_awaits_plain_thread_completes) {
  Deferred<int> d;
  Fiber<int> f = rt().spawn([&] { return d.await(); });
  std::thread t([&] { d.succeed(13); });
  t.join();
  EXPECT_EQ(f.join(), 13);
}

TEST_P(DeferredTest, test_deferred_plain_threads_only) {
  Deferred<std::string> d;
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int i = 0; i < 3; ++i)
    ts.emplace_back([&] {
      if (d.await() == "hi") ++ok;
    });
  while (d.waiters() < 3) std::this_thread::yield();
  d.succeed("hi");
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), 3);
}

TEST_P(DeferredTest, test_deferred_second_completion_throws_and_keeps_first) {
  Exit<void> e = run([] {
    Deferred<int> d;
    d.succeed(1);
    try {
      d.succeed(2);
      ADD_FAILURE() << "second succeed must throw";
    } catch (const std::logic_error& x) {
      EXPECT_TRUE(contains(x.what(), "weft::Deferred: completed twice")) << x.what();
    }
    EXPECT_THROW(d.fail(std::make_exception_ptr(std::runtime_error("x"))), std::logic_error);
    EXPECT_EQ(d.await(), 1);
    EXPECT_FALSE(d.try_succeed(3));
    EXPECT_FALSE(d.try_fail(std::make_exception_ptr(std::runtime_error("y"))));
    EXPECT_EQ(d.poll()->value(), 1);

    Deferred<void> v;
    v.fail(std::make_exception_ptr(std::runtime_error("first")));
    EXPECT_THROW(v.succeed(), std::logic_error);
    EXPECT_THROW(v.await(), std::runtime_error);
    EXPECT_THROW(v.fail(nullptr), std::invalid_argument);
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(DeferredTest, test_deferred_try_succeed_first_completer_wins) {
  Exit<int> e = run([] {
    Deferred<int> d;
    std::atomic<int> winners{0};
    std::vector<Fiber<void>> fs;
    for (int i = 0; i < 8; ++i)
      fs.push_back(fork([&, i] {
        if (d.try_succeed(i)) ++winners;
      }));
    for (auto& f : fs) f.join();
    EXPECT_GE(d.await(), 0);
    return winners.load();
  });
  EXPECT_EQ(e.value(), 1);
}

TEST_P(DeferredTest, test_deferred_null_failure_rejected) {
  Deferred<int> d;
  EXPECT_THROW(d.fail(nullptr), std::invalid_argument);
  EXPECT_FALSE(d.done());
}

// An awaiter interrupted before or while parked ends interrupted; the
// Deferred is untouched and still completes its other awaiters.
TEST_P(DeferredTest, test_deferred_interrupted_awaiter_is_removed) {
  for (bool parked_first : {false, true}) {
    Exit<int> e = run([parked_first] {
      Deferred<int> d;
      Fiber<int> victim = fork([&] { return d.await(); });
      Fiber<int> other = fork([&] { return d.await(); });
      if (parked_first) wait_for_waiters(d, 2);
      Exit<int> ve = victim.interrupt();
      EXPECT_TRUE(ve.interrupted()) << ve;
      EXPECT_FALSE(d.done());
      d.succeed(5);
      return other.join() + d.await();
    });
    EXPECT_EQ(e.value(), 10) << "parked_first=" << parked_first;
  }
}

TEST_P(DeferredTest, test_deferred_await_is_a_yield_point_even_when_done) {
  std::atomic<bool> threw{false};
  Exit<void> e = run([&] {
    Deferred<int> d;
    d.succeed(1);
    try {
      weft::interrupt();  // throws at once: we are interruptible
    } catch (const Interrupted&) {
    }
    try {
      d.await();  // the interrupt is sticky: the next yield point throws
    } catch (const Interrupted&) {
      threw = true;
    }
  });
  EXPECT_TRUE(threw.load());
  EXPECT_TRUE(e.interrupted()) << e;  // and the fiber ends interrupted
}

// A completion racing an interrupt: the awaiter either returns the value or
// ends interrupted; never both, never hangs, and the value is always there.
TEST_P(DeferredTest, test_deferred_completion_races_interrupt) {
  int got = 0, interrupted = 0;
  for (int i = 0; i < test::race_rounds(2000); ++i) {
    Exit<std::pair<bool, bool>> e = run([] {
      Deferred<int> d;
      std::atomic<bool> received{false};
      Fiber<void> victim = fork([&] {
        if (d.await() == 3) received = true;
      });
      Fiber<void> completer = fork([&] { d.succeed(3); });
      Exit<void> ve = victim.interrupt();
      completer.join();
      EXPECT_EQ(d.await(), 3);
      return std::pair{received.load(), ve.interrupted()};
    });
    auto [r, intr] = e.value();
    EXPECT_TRUE(intr || r);  // an awaiter that ended normally saw the value
    if (r) ++got;
    if (intr) ++interrupted;
  }
  EXPECT_GT(got + interrupted, 0);
}

TEST_P(DeferredTest, test_deferred_destroyed_with_waiters_wakes_them_with_error) {
  Exit<int> e = run([] {
    auto owner = std::make_unique<Deferred<int>>();
    Deferred<int>* d = owner.get();
    std::atomic<int> errors{0};
    std::vector<Fiber<void>> fs;
    for (int i = 0; i < 3; ++i)
      fs.push_back(fork([d, &errors] {
        try {
          d->await();
        } catch (const std::logic_error& x) {
          if (contains(x.what(), "weft::Deferred destroyed while fibers await it")) ++errors;
        }
      }));
    wait_for_waiters(*d, 3);
    owner.reset();
    for (auto& f : fs) f.join();
    return errors.load();
  });
  EXPECT_EQ(e.value(), 3);
}

TEST_P(DeferredTest, test_deferred_destroyed_with_plain_thread_waiter) {
  auto owner = std::make_unique<Deferred<void>>();
  Deferred<void>* d = owner.get();
  std::atomic<bool> error{false};
  std::thread t([d, &error] {
    try {
      d->await();
    } catch (const std::logic_error&) {
      error = true;
    }
  });
  while (d->waiters() < 1) std::this_thread::yield();
  owner.reset();
  t.join();
  EXPECT_TRUE(error.load());
}

// Destruction racing an interrupt of a parked awaiter: the awaiter leaves
// either way and the destructor waits for it (ASan checks nobody touches the
// dead Deferred).
TEST_P(DeferredTest, test_deferred_destruction_races_interrupt) {
  for (int i = 0; i < test::race_rounds(300); ++i) {
    Exit<void> e = run([] {
      auto owner = std::make_unique<Deferred<int>>();
      Deferred<int>* d = owner.get();
      Fiber<void> victim = fork([d] {
        try {
          d->await();
        } catch (const std::logic_error&) {
        }
      });
      wait_for_waiters(*d, 1);
      victim.interrupt_fork();
      owner.reset();
      Exit<void> ve = victim.await();
      EXPECT_TRUE(ve.interrupted()) << ve;  // the interrupt is sticky either way
    });
    ASSERT_TRUE(e.ok()) << e;
  }
}

// The last awaiter may destroy the Deferred while succeed() is still
// returning (ASan checks that succeed() no longer touches it by then).
TEST_P(DeferredTest, test_deferred_destroy_right_after_await) {
  for (int i = 0; i < test::race_rounds(1000); ++i) {
    Exit<int> e = run([i] {
      auto owner = std::make_unique<Deferred<int>>();
      Deferred<int>* d = owner.get();
      Fiber<void> completer = fork([d] { d->succeed(1); });
      if (i % 2 == 0) {
        while (!owner->done()) this_fiber::yield();  // the lock-free fast path
      }
      const int v = owner->await();
      owner.reset();
      completer.join();
      return v;
    });
    ASSERT_EQ(e.value(), 1);
  }
}

// ---------------------------------------------------------------------------
// Timed waits

using namespace std::chrono_literals;

TEST_P(DeferredTest, test_deferred_await_for_times_out) {
  Exit<void> e = run([] {
    Deferred<int> d;
    const Deadline deadline = this_fiber::now() + test::kShortWait;
    EXPECT_EQ(d.await_until(deadline), std::nullopt);
    EXPECT_GE(this_fiber::now(), deadline);  // it waited for the deadline
    EXPECT_EQ(d.await_for(test::kShortWait), std::nullopt);
    EXPECT_FALSE(d.done());
    EXPECT_EQ(d.waiters(), 0u);
    Deferred<void> v;
    EXPECT_FALSE(v.await_for(test::kShortWait));
    EXPECT_EQ(v.waiters(), 0u);
    // Still completable, and a completed one answers without waiting.
    d.succeed(5);
    std::optional<int> got = d.await_for(0ns);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(*got, 5);
    v.succeed();
    EXPECT_TRUE(v.await_for(0ns));
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(DeferredTest, test_deferred_await_for_succeeds_before_the_deadline) {
  Exit<void> e = run([] {
    Deferred<std::string> d;
    Deferred<void> v;
    Fiber<std::string> waiter = fork([&] {
      std::optional<std::string> s = d.await_for(test::kForever);
      return s.value_or("timed out");
    });
    Fiber<bool> void_waiter = fork([&] { return v.await_for(test::kForever); });
    wait_for_waiters(d, 1);
    wait_for_waiters(v, 1);
    d.succeed("hello");
    v.succeed();
    EXPECT_EQ(waiter.join(), "hello");
    EXPECT_TRUE(void_waiter.join());
    // A failure is rethrown, like await().
    Deferred<int> failing;
    Fiber<void> rethrows = fork([&] { (void)failing.await_for(test::kForever); });
    wait_for_waiters(failing, 1);
    failing.fail(std::make_exception_ptr(test::Boom("boom")));
    EXPECT_THROW(rethrows.join(), test::Boom);
    Deferred<void> failing_void;
    failing_void.fail(std::make_exception_ptr(test::Boom("boom")));
    EXPECT_THROW((void)failing_void.await_for(1h), test::Boom);
  });
  EXPECT_TRUE(e.ok()) << e;
}

// A deadline already passed does not park (see the semaphore's test).
TEST_P(DeferredTest, test_deferred_expired_deadline_does_not_park) {
  Exit<void> e = run([this] {
    Deferred<int> d;
    std::atomic<bool> other_ran{false};
    Fiber<void> other = fork([&] { other_ran = true; });
    EXPECT_EQ(d.await_until(this_fiber::now() - 1s), std::nullopt);
    EXPECT_EQ(d.await_for(-1s), std::nullopt);
    if (workers() == 1) {
      EXPECT_FALSE(other_ran.load());
    }
    EXPECT_EQ(d.waiters(), 0u);
    other.join();
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(DeferredTest, test_deferred_interrupt_during_timed_await) {
  Exit<void> e = run([] {
    Deferred<int> d;
    Fiber<bool> waiter = fork([&] { return d.await_for(1h).has_value(); });
    test::wait_parked(waiter);
    wait_for_waiters(d, 1);
    EXPECT_TRUE(waiter.interrupt().interrupted());
    EXPECT_EQ(d.waiters(), 0u);
    EXPECT_FALSE(d.done());
    d.succeed(1);  // does not touch the departed waiter
    EXPECT_EQ(d.await(), 1);
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(DeferredTest, test_deferred_timed_await_from_plain_threads) {
  Deferred<int> d;
  bool timed_out = false;
  std::thread t([&] { timed_out = !d.await_for(test::kShortWait).has_value(); });
  t.join();
  EXPECT_TRUE(timed_out);
  EXPECT_EQ(d.waiters(), 0u);
  int got = 0;
  std::thread waiter([&] {
    if (std::optional<int> v = d.await_for(test::kForever)) got = *v;
  });
  Exit<void> e = run([&] {
    wait_for_waiters(d, 1);
    d.succeed(42);
  });
  waiter.join();
  EXPECT_TRUE(e.ok()) << e;
  EXPECT_EQ(got, 42);
}

// Completion races the deadline (deterministic schedules from many seeds):
// a timed awaiter gets the value or nullopt, never anything else, and the
// untimed awaiter always wakes.
TEST(DeferredRace, test_deferred_completion_races_the_deadline) {
  int got_count = 0, timed_out_count = 0;
  for (std::uint64_t seed = 1; seed <= test::kRaceSeeds; ++seed) {
    Runtime rt(test::race_options(seed));
    Exit<bool> e = rt.block_on([seed] {
      Deferred<int> d;
      const Deadline deadline = this_fiber::now() + test::race_deadline_us(seed);
      Fiber<bool> timed = fork([&] {
        std::optional<int> v = d.await_until(deadline);
        if (v.has_value()) {
          EXPECT_EQ(*v, 7);
        }
        return v.has_value();
      });
      Fiber<int> patient = fork([&] { return d.await(); });
      for (int i = 0; i < test::race_delay_steps(seed); ++i) this_fiber::yield();
      d.succeed(7);
      EXPECT_EQ(patient.join(), 7);
      const bool got = timed.join();
      EXPECT_EQ(d.waiters(), 0u);
      return got;
    });
    ASSERT_TRUE(e.ok()) << "seed " << seed << " " << e;
    (e.value() ? got_count : timed_out_count)++;
  }
  EXPECT_GT(got_count, 0);
  EXPECT_GT(timed_out_count, 0);
}

}  // namespace
}  // namespace weft
