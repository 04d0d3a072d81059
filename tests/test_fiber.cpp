// Fibers: fork, await, join, values, void, failures, trees, roots, runtimes.
#include "support/weft_test.hpp"

#include <atomic>
#include <latch>
#include <memory>
#include <set>
#include <stdexcept>
#include <thread>

namespace weft {
namespace {

using test::RuntimeTest;

class FiberTest : public RuntimeTest {};
WEFT_RUNTIME_TEST_SUITE(FiberTest);

TEST_P(FiberTest, test_fiber_block_on_returns_value) {
  Exit<int> e = run([] { return 42; });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e.value(), 42);
}

TEST_P(FiberTest, test_fiber_block_on_void) {
  bool ran = false;
  Exit<void> e = run([&] { ran = true; });
  EXPECT_TRUE(e.ok());
  EXPECT_TRUE(ran);
}

TEST_P(FiberTest, test_fiber_fork_join_value) {
  Exit<int> e = run([] {
    Fiber<int> a = fork([] { return 20; });
    Fiber<int> b = fork([] { return 22; });
    return a.join() + b.join();
  });
  EXPECT_EQ(e.value(), 42);
}

TEST_P(FiberTest, test_fiber_fork_does_not_switch_to_child) {
  Exit<bool> e = run([] {
    std::atomic<bool> child_ran{false};
    Fiber<void> c = fork([&] { child_ran = true; });
    // On one worker the child cannot have run: fork never switches. With
    // more workers a thief may run it, so only check the single-worker case.
    bool ran_before_yield = child_ran.load();
    c.join();
    return ran_before_yield;
  });
  if (workers() == 1) {
    EXPECT_FALSE(e.value());
  }
}

TEST_P(FiberTest, test_fiber_failure_keeps_original_exception) {
  Exit<int> e = run([]() -> int {
    Fiber<int> f = fork([]() -> int { throw std::runtime_error("boom"); });
    Exit<int> inner = f.await();
    EXPECT_TRUE(inner.failed());
    EXPECT_FALSE(inner.interrupted());
    EXPECT_EQ(inner.cause().failures().size(), 1u);
    return f.join();
  });
  ASSERT_TRUE(e.failed());
  EXPECT_THROW(e.value(), std::runtime_error);
  try {
    e.value();
  } catch (const std::runtime_error& x) {
    EXPECT_STREQ(x.what(), "boom");
  }
}

struct ExitCode {
  int code;
};

TEST_P(FiberTest, test_fiber_typed_payload_failure_downcasts) {
  Exit<void> e = run([] {
    auto deep = [](auto& self, int n) -> void {
      if (n == 0) throw ExitCode{7};
      self(self, n - 1);
    };
    deep(deep, 10);
  });
  ASSERT_TRUE(e.failed());
  const ExitCode* code = e.cause().failure<ExitCode>();
  ASSERT_NE(code, nullptr);
  EXPECT_EQ(code->code, 7);
  EXPECT_EQ(e.cause().failure<std::runtime_error>(), nullptr);
}

TEST_P(FiberTest, test_fiber_nested_tree_sums) {
  // A 4-ary tree of depth 5 (1024 leaves), each leaf returns its index.
  std::function<long(int, long)> tree = [&](int depth, long index) -> long {
    if (depth == 0) return index;
    std::vector<Fiber<long>> kids;
    for (int i = 0; i < 4; ++i) kids.push_back(fork([&tree, depth, index, i] {
      return tree(depth - 1, index * 4 + i);
    }));
    long sum = 0;
    for (auto& k : kids) sum += k.join();
    return sum;
  };
  Exit<long> e = run([&] { return tree(5, 0); });
  EXPECT_EQ(e.value(), 1023L * 1024 / 2);
}

TEST_P(FiberTest, test_fiber_fork_lvalue_callable) {
  auto body = [] { return 1; };
  Exit<int> e = run([&] { return fork(body).join() + rt().spawn(body).join(); });
  EXPECT_EQ(e.value(), 2);
}

TEST_P(FiberTest, test_fiber_move_only_value) {
  Exit<std::unique_ptr<int>> e = run([] {
    Fiber<std::unique_ptr<int>> f = fork([] { return std::make_unique<int>(5); });
    return f.join();
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(*e.value(), 5);
}

TEST_P(FiberTest, test_fiber_spawn_from_plain_thread_and_await_there) {
  std::atomic<int> sum{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Fiber<int> f = rt().spawn([t] {
        this_fiber::yield();
        return t + 1;
      });
      sum += f.join();
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(sum.load(), 1 + 2 + 3 + 4);
}

TEST_P(FiberTest, test_fiber_poll_and_done) {
  Exit<bool> e = run([] {
    std::atomic<bool> go{false};
    Fiber<int> f = fork([&] {
      while (!go.load()) this_fiber::yield();
      return 3;
    });
    bool early = f.poll().has_value() || f.done();
    go = true;
    (void)f.await();
    return !early && f.done() && f.poll().has_value() && f.poll()->value() == 3;
  });
  EXPECT_TRUE(e.value());
}

TEST_P(FiberTest, test_fiber_ids_are_unique_and_current) {
  Exit<bool> e = run([] {
    FiberId me = this_fiber::id();
    Fiber<FiberId> f = fork([] { return this_fiber::id(); });
    FiberId child = f.join();
    return me != child && child == f.id() && static_cast<bool>(me);
  });
  EXPECT_TRUE(e.value());
}

TEST_P(FiberTest, test_fiber_sleep_for_waits_at_least) {
  Exit<bool> e = run([] {
    auto t0 = std::chrono::steady_clock::now();
    this_fiber::sleep_for(std::chrono::milliseconds(20));
    return std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(20);
  });
  EXPECT_TRUE(e.value());
}

TEST_P(FiberTest, test_fiber_many_sleepers_wake_in_deadline_order) {
  Exit<std::vector<int>> e = run([] {
    std::mutex mu;
    std::vector<int> order;
    std::vector<Fiber<void>> fs;
    for (int i = 5; i >= 1; --i)
      fs.push_back(fork([&, i] {
        this_fiber::sleep_for(std::chrono::milliseconds(40 * i));
        std::lock_guard lk(mu);
        order.push_back(i);
      }));
    for (auto& f : fs) f.join();
    return order;
  });
  EXPECT_EQ(e.value(), (std::vector<int>{1, 2, 3, 4, 5}));
}

TEST(FiberMisuse, test_fiber_fork_outside_fiber_throws) {
  try {
    fork([] { return 1; });
    FAIL() << "fork outside a fiber must throw";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("outside any fiber"), std::string::npos);
  }
}

TEST(FiberMisuse, test_fiber_moved_from_handle_throws) {
  Runtime rt({.workers = 1});
  Fiber<int> f = rt.spawn([] { return 1; });
  Fiber<int> g = std::move(f);
  EXPECT_EQ(g.join(), 1);
  try {
    (void)f.await();  // NOLINT(bugprone-use-after-move): the point of the test
    FAIL();
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("moved-from"), std::string::npos);
  }
}

TEST(FiberMisuse, test_fiber_stack_size_below_minimum_throws) {
  RuntimeOptions small;
  small.workers = 1;
  small.stack_size = 1024;
  EXPECT_THROW(Runtime{small}, std::invalid_argument);
  Runtime rt({.workers = 1});
  ForkOptions tiny;
  tiny.stack_size = 100;
  EXPECT_THROW(rt.spawn([] {}, tiny), std::invalid_argument);
}

TEST(FiberMisuse, test_fiber_awaiting_itself_throws) {
  Runtime rt({.workers = 1});
  Exit<bool> e = rt.block_on([] {
    auto self = std::make_shared<Fiber<void>>();
    std::atomic<bool> threw{false};
    Fiber<void> f = fork([&] {
      while (!self->valid()) this_fiber::yield();
      try {
        (void)self->await();
      } catch (const std::logic_error&) {
        threw = true;
      }
    });
    *self = f;
    f.join();
    return threw.load();
  });
  EXPECT_TRUE(e.value());
}

TEST(FiberMisuse, test_fiber_block_on_from_own_fiber_throws) {
  Runtime rt({.workers = 1});
  Exit<void> e = rt.block_on([&] { (void)rt.block_on([] {}); });
  ASSERT_TRUE(e.failed());
  EXPECT_NE(e.cause().failure<std::logic_error>(), nullptr);
}

TEST(Runtimes, test_fiber_two_runtimes_run_independently) {
  Runtime a({.workers = 2});
  Runtime b({.workers = 1});
  Exit<int> ea = a.block_on([&] {
    // A fiber of `a` awaits a fiber of `b`.
    Fiber<int> fb = b.spawn([] {
      this_fiber::yield();
      return 2;
    });
    Fiber<int> fa = fork([] { return 40; });
    return fa.join() + fb.join();
  });
  EXPECT_EQ(ea.value(), 42);
}

TEST(Runtimes, test_fiber_destroy_runtime_from_own_fiber_aborts) {
  EXPECT_DEATH(
      {
        auto* rt = new Runtime({.workers = 1});
        (void)rt->block_on([rt] { delete rt; });
      },
      "destroyed from its own fiber");
}

}  // namespace
}  // namespace weft
