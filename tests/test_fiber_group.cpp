// detail::FiberGroup: "interrupt all, then await all masked" (DESIGN.md 3.1,
// 3.2, 3.3, 3.5), exercised directly. Races are forced with latches,
// deferreds and masks, never with sleeps.
#include <weft/detail/fiber_group.hpp>

#include "fiber/fiber_control.hpp"
#include "support/weft_test.hpp"

#include <atomic>
#include <chrono>
#include <vector>

namespace weft {
namespace {

using detail::FiberGroup;
using test::contains;
using test::EventLog;
using test::HoldOtherWorkers;
using test::kForever;
using test::wait_parked;
using test::yield_until;

class FiberGroupTest : public test::RuntimeTest {};
WEFT_RUNTIME_TEST_SUITE(FiberGroupTest);

// interruptor_count() is how many interrupts were requested of f so far.
template <class T>
std::size_t interruptor_count(const Fiber<T>& f) {
  return detail::control(detail::core_of(f)).interrupt_cause().interruptors().size();
}

TEST_P(FiberGroupTest, test_fiber_group_member_already_done_is_not_interrupted) {
  Exit<void> e = run([] {
    Fiber<int> f = fork([] { return 7; });
    EXPECT_EQ(f.join(), 7);
    FiberGroup group;
    group.add(detail::core_of(f));
    group.stop(this_fiber::id());
    EXPECT_EQ(interruptor_count(f), 0u);  // no request for a fiber that ended
    Exit<int> fe = f.await();
    ASSERT_TRUE(fe.ok());
    EXPECT_EQ(fe.value(), 7);
  });
  EXPECT_TRUE(e.ok()) << e.cause().pretty();
}

TEST_P(FiberGroupTest, test_fiber_group_unstarted_member_never_runs_body) {
  std::atomic<int> bodies{0}, finalizers{0};
  Exit<void> e = run([&] {
    HoldOtherWorkers hold(workers());
    // fork never switches and no other worker is free: f has not started.
    Fiber<void> f = fork([&] {
      OnExit fin([&] { ++finalizers; });
      ++bodies;
    });
    FiberGroup group;
    group.add(detail::core_of(f));
    group.interrupt(this_fiber::id());
    hold.release();
    group.await_masked();
    Exit<void> fe = f.await();
    ASSERT_TRUE(fe.interrupted());
    EXPECT_TRUE(contains(fe.cause().interruptors(), this_fiber::id()));
  });
  EXPECT_TRUE(e.ok()) << e.cause().pretty();
  EXPECT_EQ(bodies.load(), 0);  // DESIGN 3.2: no body, no finalizers
  EXPECT_EQ(finalizers.load(), 0);
}

TEST_P(FiberGroupTest, test_fiber_group_masked_member_finishes_critical_section_first) {
  EventLog log;
  std::atomic<int> finalizers{0};
  Exit<void> e = run([&] {
    Latch in_region(1);
    Deferred<void> gate;
    Fiber<void> member = fork([&] {
      OnExit fin([&] { ++finalizers; });
      {
        Uninterruptible mask;
        in_region.count_down();
        gate.await();  // masked: the group's request stays pending
        log.add("critical section done");
      }
      this_fiber::yield();  // the first yield point after the region: delivered here
      log.add("after the region");
    });
    in_region.wait();
    Fiber<FiberId> stopper = fork([&] {
      FiberGroup group;
      group.add(detail::core_of(member));
      group.stop(this_fiber::id());
      log.add("stop returned");
      return this_fiber::id();
    });
    yield_until([&] { return interruptor_count(member) == 1; });
    EXPECT_FALSE(stopper.done());
    gate.succeed();
    const FiberId by = stopper.join();
    Exit<void> me = member.await();
    ASSERT_TRUE(me.interrupted());
    EXPECT_EQ(me.cause().interruptors(), std::vector<FiberId>{by});
  });
  EXPECT_TRUE(e.ok()) << e.cause().pretty();
  EXPECT_EQ(log.events(), (std::vector<std::string>{"critical section done", "stop returned"}));
  EXPECT_EQ(finalizers.load(), 1);
}

TEST_P(FiberGroupTest, test_fiber_group_two_groups_record_both_interruptors) {
  std::atomic<int> finalizers{0};
  Exit<void> e = run([&] {
    Latch in_region(1);
    Deferred<void> gate;
    Fiber<void> target = fork([&] {
      OnExit fin([&] { ++finalizers; });
      Uninterruptible mask;
      in_region.count_down();
      gate.await();
    });
    in_region.wait();
    auto stop_target = [&] {
      FiberGroup group;
      group.add(detail::core_of(target));
      group.stop(this_fiber::id());
      return this_fiber::id();
    };
    Fiber<FiberId> a = fork(stop_target);
    Fiber<FiberId> b = fork(stop_target);
    // Both requests land while the target is masked, so neither group finds it done.
    yield_until([&] { return interruptor_count(target) == 2; });
    gate.succeed();
    const FiberId ida = a.join(), idb = b.join();
    Exit<void> te = target.await();
    ASSERT_TRUE(te.interrupted());
    EXPECT_TRUE(contains(te.cause().interruptors(), ida));
    EXPECT_TRUE(contains(te.cause().interruptors(), idb));
  });
  EXPECT_TRUE(e.ok()) << e.cause().pretty();
  EXPECT_EQ(finalizers.load(), 1);
}

TEST_P(FiberGroupTest, test_fiber_group_interrupted_caller_stays_pending_until_members_end) {
  EventLog log;
  std::atomic<int> finalizers{0};
  Exit<void> e = run([&] {
    Latch in_region(1);
    Deferred<void> gate;
    Fiber<void> member = fork([&] {
      OnExit fin([&] { ++finalizers; });
      Uninterruptible mask;
      in_region.count_down();
      gate.await();
    });
    in_region.wait();
    Fiber<void> caller = fork([&] {
      OnExit fin([&] { ++finalizers; });
      FiberGroup group;
      group.add(detail::core_of(member));
      group.stop(this_fiber::id());
      log.add(this_fiber::interrupt_requested() ? "returned, interrupt pending"
                                                : "returned, nothing pending");
      this_fiber::yield();  // the pending interrupt is delivered here
      log.add("after the yield");
    });
    yield_until([&] { return interruptor_count(member) == 1; });
    wait_parked(caller);  // in the group's masked await
    caller.interrupt_fork();
    // The masked await ignores the request: the caller stays parked.
    EXPECT_FALSE(caller.done());
    EXPECT_TRUE(test::parked(detail::core_of(caller)));
    gate.succeed();
    Exit<void> ce = caller.await();
    ASSERT_TRUE(ce.interrupted());
    EXPECT_TRUE(contains(ce.cause().interruptors(), this_fiber::id()));
    EXPECT_TRUE(member.await().interrupted());
  });
  EXPECT_TRUE(e.ok()) << e.cause().pretty();
  EXPECT_EQ(log.events(), std::vector<std::string>{"returned, interrupt pending"});
  EXPECT_EQ(finalizers.load(), 2);
}

TEST_P(FiberGroupTest, test_fiber_group_interrupts_all_before_awaiting_any) {
  // Each member's finalizer waits for the other's to start: awaiting the
  // first before interrupting the second would never return.
  std::atomic<int> finalizers{0};
  Exit<void> e = run([&] {
    Latch both_unwinding(2);
    auto member = [&] {
      OnExit fin([&] {
        both_unwinding.count_down();
        both_unwinding.wait();
        ++finalizers;
      });
      this_fiber::sleep_for(kForever);
    };
    Fiber<void> a = fork(member);
    Fiber<void> b = fork(member);
    wait_parked(a);
    wait_parked(b);
    FiberGroup group;
    group.add(detail::core_of(a));
    group.add(detail::core_of(b));
    group.stop(this_fiber::id());
    EXPECT_TRUE(a.done());
    EXPECT_TRUE(b.done());
    EXPECT_TRUE(contains(a.await().cause().interruptors(), this_fiber::id()));
    EXPECT_TRUE(contains(b.await().cause().interruptors(), this_fiber::id()));
  });
  EXPECT_TRUE(e.ok()) << e.cause().pretty();
  EXPECT_EQ(finalizers.load(), 2);
}

TEST_P(FiberGroupTest, test_fiber_group_vacant_slots_are_skipped) {
  std::atomic<int> finalizers{0};
  Exit<void> e = run([&] {
    Fiber<void> f = fork([&] {
      OnExit fin([&] { ++finalizers; });
      this_fiber::sleep_for(kForever);
    });
    wait_parked(f);
    FiberGroup group(3);
    EXPECT_EQ(group.size(), 3u);
    detail::core_of(f).retain();
    group[1] = detail::FiberRef(&detail::core_of(f));
    group.stop(this_fiber::id());
    EXPECT_TRUE(f.await().interrupted());
  });
  EXPECT_TRUE(e.ok()) << e.cause().pretty();
  EXPECT_EQ(finalizers.load(), 1);
}

TEST_P(FiberGroupTest, test_fiber_group_await_masked_until_names_the_straggler) {
  std::atomic<int> finalizers{0};
  Exit<void> e = run([&] {
    Latch in_region(1);
    Deferred<void> gate;
    Fiber<void> quick = fork([&] {
      OnExit fin([&] { ++finalizers; });
      this_fiber::sleep_for(kForever);
    });
    Fiber<void> masked = fork([&] {
      OnExit fin([&] { ++finalizers; });
      Uninterruptible mask;
      in_region.count_down();
      gate.await();
    });
    in_region.wait();
    wait_parked(quick);
    FiberGroup group;
    group.add(detail::core_of(masked));
    group.add(detail::core_of(quick));
    group.interrupt(this_fiber::id());
    // A deadline already passed: the masked member (first) is still in its region.
    const auto now = std::chrono::steady_clock::now();
    EXPECT_EQ(group.await_masked_until(now), &detail::core_of(masked));
    gate.succeed();
    EXPECT_EQ(group.await_masked_until(std::chrono::steady_clock::time_point::max()), nullptr);
    EXPECT_TRUE(quick.done());
    EXPECT_TRUE(masked.await().interrupted());
  });
  EXPECT_TRUE(e.ok()) << e.cause().pretty();
  EXPECT_EQ(finalizers.load(), 2);
}

TEST_P(FiberGroupTest, test_fiber_group_stop_from_plain_thread) {
  std::atomic<int> finalizers{0};
  Latch parked(2);
  auto member = [&] {
    OnExit fin([&] { ++finalizers; });
    parked.count_down();
    this_fiber::sleep_for(kForever);
  };
  Fiber<void> a = rt().spawn(member);
  Fiber<void> b = rt().spawn(member);
  parked.wait();  // a plain thread: blocks
  {
    FiberGroup group;
    group.add(detail::core_of(a));
    group.add(detail::core_of(b));
    group.stop(this_fiber::id());  // awaits from a plain thread (as ~Runtime does)
  }
  EXPECT_TRUE(a.done());
  EXPECT_TRUE(b.done());
  Exit<void> ae = a.await(), be = b.await();
  ASSERT_TRUE(ae.interrupted());
  ASSERT_TRUE(be.interrupted());
  EXPECT_EQ(ae.cause().interruptors(), std::vector<FiberId>{this_fiber::id()});
  EXPECT_EQ(be.cause().interruptors(), std::vector<FiberId>{this_fiber::id()});
  EXPECT_EQ(finalizers.load(), 2);
}

}  // namespace
}  // namespace weft
