// weft::blocking(): results and exceptions, interruption (queued, running,
// masked, pending on entry), the pool's bound, FIFO order, lazy start and
// idle retirement, plain threads, deterministic runtimes.
#include <weft/blocking.hpp>
#include <weft/io.hpp>

#include "scheduler/scheduler.hpp"
#include "support/weft_test.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace weft {
namespace {

using namespace std::chrono_literals;
using test::Boom;
using test::RuntimeTest;
using test::wait_parked;
using test::yield_until;

// kBound: how long a pool thread waits for the test before giving up, so a
// broken runtime fails the test instead of hanging it. Never reached when
// the code works.
constexpr auto kBound = 60s;

// Gate is a one-way gate for pool threads (plain threads) with a bounded wait.
class Gate {
 public:
  void open() {
    {
      std::lock_guard lk(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  // wait() is true once open; false after kBound (a failure).
  bool wait() {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, kBound, [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// wait_for_stop() blocks this (pool) thread until stop is requested on st,
// for at most kBound; true when it was.
bool wait_for_stop(const std::stop_token& st) {
  std::mutex m;
  std::condition_variable_any cv;
  std::unique_lock lk(m);
  (void)cv.wait_for(lk, st, kBound, [] { return false; });
  return st.stop_requested();
}

// MaxTracker counts calls in progress and the most seen at once.
struct MaxTracker {
  std::atomic<int> now{0};
  std::atomic<int> max{0};
  void enter() {
    const int n = now.fetch_add(1) + 1;
    int m = max.load();
    while (n > m && !max.compare_exchange_weak(m, n)) {
    }
  }
  void leave() { now.fetch_sub(1); }
};

std::string thread_name() {
  char buf[32] = {};
  pthread_getname_np(pthread_self(), buf, sizeof buf);
  return buf;
}

class BlockingTest : public RuntimeTest {
 protected:
  // restart() replaces the runtime with one whose pool has these limits.
  void restart(unsigned blocking_threads, std::chrono::milliseconds idle = 10s) {
    RuntimeOptions o;
    o.workers = workers();
    o.blocking_threads = blocking_threads;
    o.blocking_idle = idle;
    rt_.reset();
    rt_ = std::make_unique<Runtime>(o);
  }
};
WEFT_RUNTIME_TEST_SUITE(BlockingTest);

TEST_P(BlockingTest, test_blocking_returns_value_from_a_pool_thread) {
  std::thread::id worker;
  std::thread::id pool;
  std::string name;
  Exit<int> e = run([&] {
    worker = std::this_thread::get_id();
    return blocking([&] {
      pool = std::this_thread::get_id();
      name = thread_name();
      return 42;
    });
  });
  EXPECT_EQ(e.value(), 42);
  EXPECT_NE(pool, worker);
  EXPECT_EQ(name, "weft/blk");
}

TEST_P(BlockingTest, test_blocking_void_result) {
  std::atomic<bool> ran{false};
  Exit<void> e = run([&] { blocking([&] { ran = true; }); });
  EXPECT_TRUE(e.ok());
  EXPECT_TRUE(ran);
}

TEST_P(BlockingTest, test_blocking_move_only_result) {
  Exit<int> e = run([] {
    std::unique_ptr<int> p = blocking([] { return std::make_unique<int>(7); });
    return *p;
  });
  EXPECT_EQ(e.value(), 7);
}

TEST_P(BlockingTest, test_blocking_lvalue_reference_result) {
  int x = 1;
  Exit<bool> e = run([&] {
    int& r = blocking([&]() -> int& { return x; });
    r = 5;
    return &r == &x;
  });
  EXPECT_TRUE(e.value());
  EXPECT_EQ(x, 5);
}

TEST_P(BlockingTest, test_blocking_exception_keeps_its_type) {
  Exit<void> e = run([] {
    try {
      blocking([]() -> int { throw Boom("from the pool"); });
      ADD_FAILURE() << "no exception";
    } catch (const Boom& b) {
      EXPECT_STREQ(b.what(), "from the pool");
    }
    try {
      blocking([] { throw std::system_error(ENOENT, std::generic_category(), "lookup"); });
      ADD_FAILURE() << "no exception";
    } catch (const std::system_error& err) {
      EXPECT_EQ(err.code().value(), ENOENT);
    }
  });
  EXPECT_TRUE(e.ok());
}

TEST_P(BlockingTest, test_blocking_worker_stays_free_while_f_runs) {
  // With one worker, f waits for a fiber on that same worker: blocking()
  // must have parked its caller, not blocked the worker.
  Gate set_by_fiber;
  Exit<bool> e = run([&] {
    Fiber<bool> a = fork([&] { return blocking([&] { return set_by_fiber.wait(); }); });
    wait_parked(a);
    Fiber<void> b = fork([&] { set_by_fiber.open(); });
    b.join();
    return a.join();
  });
  EXPECT_TRUE(e.value());
}

TEST_P(BlockingTest, test_blocking_interrupt_stops_token_and_waits_for_f) {
  Deferred<void> started;
  Deferred<void> saw_stop;
  Gate may_return;
  std::atomic<bool> f_returned{false};
  Exit<void> e = run([&] {
    Fiber<int> caller = fork([&] {
      try {
        return blocking([&](std::stop_token st) {
          started.succeed();
          if (wait_for_stop(st)) saw_stop.succeed();
          EXPECT_TRUE(may_return.wait());
          f_returned = true;
          return 1;
        });
      } catch (const Interrupted&) {
        EXPECT_TRUE(f_returned) << "Interrupted before f returned";
        throw;
      }
    });
    started.await();
    caller.interrupt_fork();
    saw_stop.await();  // the interrupt reached f's token
    for (int i = 0; i < 20; ++i) this_fiber::yield();
    EXPECT_FALSE(caller.done()) << "the caller left while f still ran";
    may_return.open();
    Exit<int> ce = caller.await();
    EXPECT_TRUE(ce.interrupted());
    EXPECT_TRUE(test::contains(ce.cause().interruptors(), this_fiber::id()));
  });
  EXPECT_TRUE(e.ok());
  EXPECT_TRUE(f_returned);
}

TEST_P(BlockingTest, test_blocking_interrupted_discards_what_f_threw) {
  // f answers the stop with an exception: the caller throws Interrupted.
  Deferred<void> started;
  Exit<void> e = run([&] {
    Fiber<int> caller = fork([&] {
      return blocking([&](std::stop_token st) -> int {
        started.succeed();
        wait_for_stop(st);
        throw Boom("cancelled");
      });
    });
    started.await();
    Exit<int> ce = caller.interrupt();
    EXPECT_TRUE(ce.interrupted());
    EXPECT_FALSE(ce.cause().has_failure());
  });
  EXPECT_TRUE(e.ok());
}

TEST_P(BlockingTest, test_blocking_queued_call_interrupted_never_runs) {
  restart(1);
  Deferred<void> holder_started;
  Gate release;
  std::atomic<bool> ran{false};
  Exit<void> e = run([&] {
    Fiber<void> holder = fork([&] {
      blocking([&] {
        holder_started.succeed();
        EXPECT_TRUE(release.wait());
      });
    });
    holder_started.await();  // the only pool thread is busy
    Fiber<void> queued = fork([&] { blocking([&] { ran = true; }); });
    yield_until([&] { return rt().stats().blocking_queued == 1; });
    wait_parked(queued);
    Exit<void> qe = queued.interrupt();
    EXPECT_TRUE(qe.interrupted());
    EXPECT_EQ(rt().stats().blocking_queued, 0u);
    release.open();
    holder.join();
    // The one thread is free again: a new call runs; the abandoned one never does.
    EXPECT_EQ(blocking([] { return 3; }), 3);
  });
  EXPECT_TRUE(e.ok());
  EXPECT_FALSE(ran);
}

TEST_P(BlockingTest, test_blocking_bound_respected_and_queue_is_fifo) {
  restart(2);
  MaxTracker busy;
  Gate release0;
  Gate release1;
  std::mutex order_mu;
  std::vector<int> order;
  auto job = [&](int i) {
    return [&, i] {
      busy.enter();
      {
        std::lock_guard lk(order_mu);
        order.push_back(i);
      }
      if (i == 0) {
        EXPECT_TRUE(release0.wait());
      } else if (i == 1) {
        EXPECT_TRUE(release1.wait());
      }
      busy.leave();
    };
  };
  Exit<void> e = run([&] {
    std::vector<Fiber<void>> calls;
    for (int i = 0; i < 2; ++i) calls.push_back(fork([&, i] { blocking(job(i)); }));
    yield_until([&] { return busy.now.load() == 2; });
    // Jobs 2..5 queue behind the two busy threads, in this order.
    for (int i = 2; i < 6; ++i) {
      calls.push_back(fork([&, i] { blocking(job(i)); }));
      yield_until([&] { return rt().stats().blocking_queued == static_cast<std::size_t>(i - 1); });
    }
    EXPECT_EQ(rt().stats().blocking_threads, 2u);
    // One thread frees up and runs 2..5 one after the other; job 1 keeps the other.
    release0.open();
    for (int i = 2; i < 6; ++i) calls[static_cast<std::size_t>(i)].join();
    release1.open();
    for (auto& c : calls) c.join();
  });
  EXPECT_TRUE(e.ok());
  EXPECT_EQ(busy.max.load(), 2);
  ASSERT_EQ(order.size(), 6u);
  EXPECT_EQ(std::vector<int>(order.begin() + 2, order.end()), (std::vector<int>{2, 3, 4, 5}));
  EXPECT_LE(rt().stats().blocking_threads, 2u);
}

TEST_P(BlockingTest, test_blocking_threads_start_lazily_and_are_reused) {
  Exit<void> warm = run([] { this_fiber::yield(); });
  EXPECT_TRUE(warm.ok());
  EXPECT_EQ(rt().stats().blocking_threads, 0u) << "a pool thread before any blocking()";
  Exit<void> e = run([&] {
    detail::BlockingPool& pool = detail::current_scheduler()->blocking_pool();
    const std::thread::id first = blocking([] { return std::this_thread::get_id(); });
    EXPECT_EQ(pool.stats().threads, 1u);
    // Once that thread waits for work, the next call goes to it.
    yield_until([&] { return pool.stats().idle == 1; });
    const std::thread::id second = blocking([] { return std::this_thread::get_id(); });
    EXPECT_EQ(second, first);
    EXPECT_EQ(pool.stats().threads, 1u);
  });
  EXPECT_TRUE(e.ok());
}

TEST_P(BlockingTest, test_blocking_idle_threads_retire) {
  restart(4, 50ms);
  for (int round = 0; round < 2; ++round) {
    std::size_t inside = 0;
    Exit<void> e = run([&] { blocking([&] { inside = rt().stats().blocking_threads; }); });
    EXPECT_TRUE(e.ok());
    EXPECT_EQ(inside, 1u);  // a thread runs f: it cannot have retired
    // Poll the count with a deadline; the idle timeout itself is the subject.
    const auto deadline = std::chrono::steady_clock::now() + kBound;
    while (rt().stats().blocking_threads != 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(1ms);
    EXPECT_EQ(rt().stats().blocking_threads, 0u) << "round " << round;
  }
}

TEST_P(BlockingTest, test_blocking_interrupt_pending_on_entry_never_runs_f) {
  std::atomic<bool> ran{false};
  Exit<void> e = run([&] {
    {
      Uninterruptible mask;
      interrupt();  // recorded; delivered at the next yield point
    }
    blocking([&] { ran = true; });
  });
  EXPECT_TRUE(e.interrupted());
  EXPECT_FALSE(ran);
  EXPECT_EQ(rt().stats().blocking_threads, 0u);
}

TEST_P(BlockingTest, test_blocking_masked_caller_waits_for_f) {
  Deferred<void> started;
  Gate may_return;
  Exit<void> e = run([&] {
    Fiber<int> caller = fork([&] {
      int v = 0;
      {
        Uninterruptible mask;
        v = blocking([&](std::stop_token st) {
          started.succeed();
          EXPECT_TRUE(may_return.wait());
          EXPECT_FALSE(st.stop_possible());  // a masked caller's token never fires
          return 5;
        });
        EXPECT_TRUE(this_fiber::interrupt_requested());
      }
      return v;
    });
    started.await();
    caller.interrupt_fork();
    may_return.open();
    Exit<int> ce = caller.await();
    EXPECT_TRUE(ce.interrupted());  // at the end-of-body boundary, after the mask
  });
  EXPECT_TRUE(e.ok());
}

TEST_P(BlockingTest, test_blocking_in_timeout_returns_nullopt_after_f_finished) {
  // The deadline races the pool's pickup of the job: a job still queued when
  // it fires is cancelled and f never runs (blocking.hpp). The pool thread
  // made by the first call waits idle for the second, so f almost always
  // starts first; either way the contract is checked: a started f has
  // finished when timeout returns, and an unstarted one never runs (TSan's
  // stage once took more than the 20 ms to start a pool thread).
  std::atomic<bool> started{false}, finished{false};
  bool ran = false;
  Exit<bool> e = run([&] {
    EXPECT_EQ(blocking([] { return 1; }), 1);  // a pool thread, idle now
    std::optional<int> r = timeout(20ms, [&] {
      return blocking([&](std::stop_token st) {
        started = true;
        EXPECT_TRUE(wait_for_stop(st));
        finished = true;
        return 1;
      });
    });
    ran = started.load();
    if (ran) {
      EXPECT_TRUE(finished) << "timeout returned while f still ran";
    }
    return r.has_value();
  });
  EXPECT_FALSE(e.value());
  restart(1);  // ~Runtime joins the pool's threads: a late f would have run
  EXPECT_EQ(started.load(), ran) << "f started after timeout cancelled its job";
  EXPECT_EQ(finished.load(), ran);
}

TEST_P(BlockingTest, test_blocking_many_fibers_share_a_small_pool) {
  restart(4);
  MaxTracker busy;
  Exit<long> e = run([&] {
    std::vector<Fiber<int>> calls;
    for (int i = 0; i < 200; ++i)
      calls.push_back(fork([&, i] {
        return blocking([&, i] {
          busy.enter();
          std::this_thread::yield();
          busy.leave();
          return i;
        });
      }));
    long sum = 0;
    for (auto& c : calls) sum += c.join();
    return sum;
  });
  EXPECT_EQ(e.value(), 199L * 200 / 2);
  EXPECT_LE(busy.max.load(), 4);
  EXPECT_LE(rt().stats().blocking_threads, 4u);
  EXPECT_EQ(rt().stats().blocking_queued, 0u);
}

TEST_P(BlockingTest, test_blocking_interrupts_race_calls) {
  // Interrupts land at every stage (before submit, queued, running, done);
  // whatever wins, an f that started has returned when its caller ends.
  restart(2);
  constexpr int kCalls = 60;
  std::vector<std::atomic<bool>> started(kCalls);
  std::vector<std::atomic<bool>> finished(kCalls);
  int interrupted = 0;
  Exit<void> e = run([&] {
    std::vector<Fiber<int>> calls;
    for (int i = 0; i < kCalls; ++i) {
      calls.push_back(fork([&, i] {
        try {
          return blocking([&, i](std::stop_token st) {
            started[static_cast<std::size_t>(i)] = true;
            if (i % 3 == 0) wait_for_stop(st);  // returns only when stopped
            finished[static_cast<std::size_t>(i)] = true;
            return i;
          });
        } catch (const Interrupted&) {
          const auto k = static_cast<std::size_t>(i);
          EXPECT_TRUE(!started[k] || finished[k]) << "call " << i;
          throw;
        }
      }));
      for (int y = 0; y < i % 4; ++y) this_fiber::yield();
      if (i % 2 == 0 || i % 3 == 0) calls.back().interrupt_fork();
    }
    for (int i = 0; i < kCalls; ++i) {
      Exit<int> ce = calls[static_cast<std::size_t>(i)].await();
      if (ce.interrupted()) {
        ++interrupted;
      } else {
        EXPECT_EQ(ce.value(), i);
      }
      // Every i % 3 == 0 returns only when stopped, so it ends interrupted.
      EXPECT_TRUE(i % 3 != 0 || ce.interrupted()) << "call " << i;
    }
  });
  EXPECT_TRUE(e.ok());
  for (int i = 0; i < kCalls; ++i)
    EXPECT_EQ(started[static_cast<std::size_t>(i)].load(),
              finished[static_cast<std::size_t>(i)].load())
        << "call " << i;
  EXPECT_GE(interrupted, kCalls / 3);
}

TEST_P(BlockingTest, test_blocking_dump_names_the_wait) {
  Deferred<void> started;
  Gate may_return;
  std::string dump;
  Exit<void> e = run([&] {
    Fiber<void> caller = fork([&] {
      blocking([&] {
        started.succeed();
        EXPECT_TRUE(may_return.wait());
      });
    });
    started.await();
    wait_parked(caller);
    dump = rt().dump();
    may_return.open();
    caller.join();
  });
  EXPECT_TRUE(e.ok());
  EXPECT_NE(dump.find("parked in weft::blocking"), std::string::npos) << dump;
}

TEST_P(BlockingTest, test_blocking_runtime_shutdown_stops_a_running_call) {
  // ~Runtime interrupts the root parked in blocking(): f sees the stop, and
  // the runtime is gone only after f returned and its pool thread was joined.
  Deferred<void> started;
  std::atomic<bool> finished{false};
  Fiber<int> root = rt().spawn([&] {
    return blocking([&](std::stop_token st) {
      started.succeed();
      EXPECT_TRUE(wait_for_stop(st));
      finished = true;
      return 1;
    });
  });
  started.await();  // this plain thread blocks until f runs
  rt_.reset();
  EXPECT_TRUE(finished);
  std::optional<Exit<int>> re = root.poll();
  ASSERT_TRUE(re.has_value());
  EXPECT_TRUE(re->interrupted());
  root = Fiber<int>();
  restart(1);  // for TearDown
}

// --- no fixture ------------------------------------------------------------

TEST(BlockingPlainThread, test_blocking_plain_thread_runs_f_here) {
  const std::thread::id me = std::this_thread::get_id();
  EXPECT_EQ(blocking([] { return std::this_thread::get_id(); }), me);
  EXPECT_FALSE(blocking([](std::stop_token st) { return st.stop_possible(); }));
  EXPECT_THROW(blocking([] { throw Boom("plain"); }), Boom);
}

TEST(BlockingDeterministic, test_blocking_deterministic_runtime_uses_the_pool) {
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    RuntimeOptions o;
    o.workers = 2;
    o.seed = seed;
    o.deterministic = true;
    Runtime rt(o);
    Exit<int> e = rt.block_on([] {
      std::vector<Fiber<int>> calls;
      for (int i = 0; i < 8; ++i)
        calls.push_back(fork([i] {
          this_fiber::sleep_for(std::chrono::microseconds(i));
          return blocking([i] { return i; });
        }));
      int sum = 0;
      for (auto& c : calls) sum += c.join();
      return sum;
    });
    EXPECT_EQ(e.value(), 28) << "seed " << seed;
    EXPECT_GE(rt.stats().blocking_threads, 1u);
  }
}

TEST(BlockingOptions, test_blocking_options_are_validated) {
  RuntimeOptions o;
  o.workers = 1;
  o.blocking_threads = 0;
  try {
    Runtime rt(o);
    ADD_FAILURE() << "blocking_threads = 0 accepted";
  } catch (const std::invalid_argument& err) {
    EXPECT_NE(std::string(err.what()).find("RuntimeOptions::blocking_threads"), std::string::npos)
        << err.what();
  }
  o.blocking_threads = 1;
  o.blocking_idle = std::chrono::milliseconds(-1);
  EXPECT_THROW(Runtime rt(o), std::invalid_argument);
}

}  // namespace
}  // namespace weft
