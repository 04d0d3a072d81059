// The fiber's own contract at its edges: await on an ended fiber is a yield
// point, spawn takes the same callables as fork, dump walks a changing tree,
// and the run state goes through the states docs/internals.md lists.
#include "fiber/fiber_control.hpp"
#include "support/scale.hpp"
#include "support/weft_test.hpp"

#include <weft/fiber_local.hpp>

#include <atomic>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace weft {
namespace {

using test::RuntimeTest;

class FiberCoreTest : public RuntimeTest {};
WEFT_RUNTIME_TEST_SUITE(FiberCoreTest);

// A fiber's FiberExtras (src/fiber/fiber_control.hpp) is made on first use
// by whoever comes first: the owner (here a FiberLocal set) or an
// interrupter on another thread. Both at once: one CAS wins, the loser frees
// its copy, and neither the value nor the interrupter is lost.
TEST_P(FiberCoreTest, test_extras_made_by_owner_and_interrupter_at_once_keep_both) {
  FiberLocal<int> local(0);
  const int rounds = static_cast<int>(test::scaled(300, 50));
  for (int round = 1; round <= rounds; ++round) {
    std::atomic<int> ready{0};
    int seen = -1;
    Fiber<void> f = rt().spawn([&] {
      ready.fetch_add(1, std::memory_order_seq_cst);
      while (ready.load(std::memory_order_seq_cst) < 2) {
      }                  // the interrupter is a plain thread: both sides start together
      local.set(round);  // not a yield point: always runs
      seen = local.get();
      Deferred<int> never;
      (void)never.await();  // until the interrupt, whenever it came
    });
    FiberId by;
    std::thread t([&] {
      by = detail::current_id();
      ready.fetch_add(1, std::memory_order_seq_cst);
      while (ready.load(std::memory_order_seq_cst) < 2) {
      }
      f.interrupt_fork();
    });
    t.join();
    Exit<void> e = f.await();
    EXPECT_EQ(seen, round);
    ASSERT_TRUE(e.interrupted()) << e.cause().pretty();
    EXPECT_TRUE(test::contains(e.cause().interruptors(), by)) << e.cause().pretty();
  }
}

// A fiber that never needed them has no extras: an unnamed, never
// interrupted fiber reads an empty name, no interrupters, no held Mutex.
TEST_P(FiberCoreTest, test_fiber_without_extras_reads_empty_defaults) {
  Exit<void> e = run([] {
    Fiber<int> plain = fork([] { return 1; });
    EXPECT_EQ(plain.join(), 1);
    detail::FiberControl& c = detail::control(detail::core_of(plain));
    EXPECT_EQ(c.name(), "");
    FiberId ids[2];
    EXPECT_EQ(c.interrupters_snapshot(ids, 2), 0u);
    EXPECT_EQ(c.held(0), nullptr);
    EXPECT_TRUE(c.interrupt_cause().empty());
    ForkOptions options;
    options.name = "named";
    Fiber<int> named = fork([] { return 2; }, options);
    EXPECT_EQ(named.join(), 2);
    EXPECT_EQ(detail::control(detail::core_of(named)).name(), "named");
  });
  EXPECT_TRUE(e.ok()) << e.cause().pretty();
}

// Go (a receive from a closed channel inside a select with ctx.Done) and
// Effect (Fiber.join checks interruption first) both stop an interrupted
// joiner even when the joined fiber already ended; so does every weft
// primitive on entry. Fiber::await does too.
TEST_P(FiberCoreTest, test_await_on_ended_fiber_delivers_pending_interrupt) {
  bool returned = false;
  Exit<void> e = run([&] {
    Fiber<int> done = fork([] { return 7; });
    while (!done.done()) this_fiber::yield();
    {
      Uninterruptible mask;
      weft::interrupt();  // recorded, delivered at the next yield point
    }
    (void)done.await();
    returned = true;
  });
  EXPECT_FALSE(returned);
  EXPECT_TRUE(e.interrupted()) << e.cause().pretty();
}

TEST_P(FiberCoreTest, test_await_on_ended_fiber_in_mask_returns_its_exit) {
  int value = 0;
  Exit<void> e = run([&] {
    Fiber<int> done = fork([] { return 7; });
    while (!done.done()) this_fiber::yield();
    Uninterruptible mask;
    weft::interrupt();  // recorded, not thrown: masked
    value = done.join();
  });
  EXPECT_EQ(value, 7);
  // The end of the body is an interruptible boundary (DESIGN 3.5).
  EXPECT_TRUE(e.interrupted()) << e.cause().pretty();
}

TEST_P(FiberCoreTest, test_fiber_await_for_times_out_then_gets_the_exit) {
  Exit<void> e = run([] {
    Deferred<int> gate;
    Fiber<int> slow = fork([&] { return gate.await() + 1; });
    const Deadline before = this_fiber::now();
    std::optional<Exit<int>> none = slow.await_for(std::chrono::milliseconds(2));
    EXPECT_FALSE(none.has_value());
    EXPECT_GE(this_fiber::now() - before, std::chrono::milliseconds(2));
    EXPECT_FALSE(slow.done());  // the fiber runs on: a timed await does not stop it
    gate.succeed(41);
    std::optional<Exit<int>> got = slow.await_until(Deadline::max());
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->value(), 42);
    // Ended: an expired deadline still returns the Exit without parking.
    std::optional<Exit<int>> again = slow.await_for(std::chrono::nanoseconds(-1));
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(again->value(), 42);
  });
  EXPECT_TRUE(e.ok()) << e.cause().pretty();
}

TEST_P(FiberCoreTest, test_fiber_await_for_is_interruptible) {
  Deferred<void> never;
  Latch waiting(1);
  Fiber<void> awaiter = rt().spawn([&] {
    Fiber<void> stuck = fork([&] { never.await(); });
    waiting.count_down();
    (void)stuck.await_for(test::kForever);
    ADD_FAILURE() << "the timed await returned";
  });
  waiting.wait();
  test::wait_parked(awaiter);
  Exit<void> e = awaiter.interrupt();
  EXPECT_TRUE(e.interrupted()) << e.cause().pretty();
}

TEST_P(FiberCoreTest, test_fiber_await_for_from_a_plain_thread) {
  Deferred<void> gate;
  Fiber<int> f = rt().spawn([&] {
    gate.await();
    return 3;
  });
  EXPECT_FALSE(f.await_for(std::chrono::milliseconds(1)).has_value());
  gate.succeed();
  std::optional<Exit<int>> got = f.await_for(test::kForever);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->value(), 3);
}

// A callable whose operator() only exists for lvalues: fork calls a
// decay-copy as an lvalue; spawn and block_on must do the same.
struct LvalueOnly {
  int operator()() & { return 5; }
  int operator()() && = delete;
};

TEST_P(FiberCoreTest, test_spawn_and_block_on_accept_lvalue_qualified_callables) {
  Fiber<int> f = rt().spawn(LvalueOnly{});
  EXPECT_EQ(f.join(), 5);
  Exit<int> e = rt().block_on(LvalueOnly{});
  EXPECT_EQ(e.value(), 5);
  Exit<int> forked = run([] { return fork(LvalueOnly{}).join(); });
  EXPECT_EQ(forked.value(), 5);
}

// dump() copies the tree with new references and formats with no lock held;
// children forked and ending under it must neither race it (TSan/ASan) nor
// make it lose the fibers that stay.
TEST_P(FiberCoreTest, test_dump_while_children_fork_and_end) {
  std::atomic<bool> stop{false};
  Latch parked(1);
  ForkOptions o;
  o.name = "churner";
  Fiber<void> churner = rt().spawn(
      [&] {
        Fiber<void> keeper = fork([] { this_fiber::sleep_for(test::kForever); }, {"keeper"});
        parked.count_down();
        while (!stop.load(std::memory_order_relaxed)) {
          std::vector<Fiber<int>> batch;
          for (int i = 0; i < 8; ++i) batch.push_back(fork([i] { return i; }));
          for (auto& f : batch) (void)f.join();
        }
        keeper.interrupt_fork();
      },
      o);
  parked.wait();
  for (std::uint64_t i = 0; i < test::scaled(200, 50); ++i) {
    const std::string d = rt().dump();
    ASSERT_NE(d.find("'churner'"), std::string::npos) << d;
    ASSERT_NE(d.find("'keeper'"), std::string::npos) << d;
  }
  stop.store(true, std::memory_order_relaxed);
  EXPECT_TRUE(churner.await().ok());
}

// The states a parked fiber goes through, as dump() and run_state() show them.
TEST_P(FiberCoreTest, test_run_state_of_parked_and_ended_fiber) {
  Deferred<void> never;
  Fiber<void> f = rt().spawn([&] { never.await(); });
  test::wait_parked(f);
  EXPECT_NE(rt().dump().find("parked in Deferred::await on "), std::string::npos) << rt().dump();
  EXPECT_TRUE(f.interrupt().interrupted());
}

}  // namespace
}  // namespace weft
