// DESIGN 3.3: Uninterruptible, Interruptible, restore, ForkOptions::uninterruptible.
#include "support/weft_test.hpp"

#include <atomic>

namespace weft {
namespace {

using test::EventLog;
using test::kForever;

class MaskTest : public test::RuntimeTest {};
WEFT_RUNTIME_TEST_SUITE(MaskTest);

TEST_P(MaskTest, test_mask_keeps_request_pending_until_region_closes) {
  EventLog log;
  Exit<void> e = run([&] {
    std::atomic<bool> masked{false};
    Fiber<void> target = fork([&] {
      {
        Uninterruptible mask;
        masked = true;
        while (!this_fiber::interrupt_requested()) this_fiber::yield();
        this_fiber::sleep_for(std::chrono::milliseconds(5));  // a yield point: not delivered
        log.add("masked sleep completed");
        EXPECT_FALSE(this_fiber::interruptible());
      }
      log.add("mask closed");
      try {
        this_fiber::yield();
      } catch (const Interrupted&) {
        log.add("delivered at first yield point after the region");
        throw;
      }
    });
    while (!masked) this_fiber::yield();
    EXPECT_TRUE(target.interrupt().interrupted());
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(log.events(), (std::vector<std::string>{"masked sleep completed", "mask closed",
                                                     "delivered at first yield point after the region"}));
}

TEST_P(MaskTest, test_mask_regions_nest) {
  EventLog log;
  Exit<void> e = run([&] {
    Uninterruptible outer;
    {
      Uninterruptible inner;
      weft::interrupt();  // recorded, not thrown
      log.add("self-interrupt recorded");
    }
    this_fiber::yield();  // still inside the outer region
    log.add("inner closed, still masked");
    EXPECT_TRUE(outer.restore([] { return this_fiber::interruptible(); }));
  });
  // The body ends with the request pending: an interruptible boundary.
  EXPECT_TRUE(e.interrupted());
  EXPECT_EQ(log.events(), (std::vector<std::string>{"self-interrupt recorded",
                                                     "inner closed, still masked"}));
}

TEST_P(MaskTest, test_mask_restore_does_not_unmask_outer_region) {
  Exit<std::vector<bool>> e = run([&] {
    std::vector<bool> seen;
    Uninterruptible outer;
    Uninterruptible inner;
    seen.push_back(inner.restore([] { return this_fiber::interruptible(); }));  // outer's status
    seen.push_back(outer.restore([] { return this_fiber::interruptible(); }));  // the original
    seen.push_back(this_fiber::interruptible());
    return seen;
  });
  EXPECT_EQ(e.value(), (std::vector<bool>{false, true, false}));
}

TEST_P(MaskTest, test_mask_restore_delivers_inside) {
  EventLog log;
  Exit<void> e = run([&] {
    Uninterruptible mask;
    weft::interrupt();
    try {
      mask.restore([&] { this_fiber::yield(); });
    } catch (const Interrupted&) {
      log.add("delivered inside restore");
      throw;
    }
  });
  EXPECT_TRUE(e.interrupted());
  EXPECT_EQ(log.count("delivered inside restore"), 1);
}

TEST_P(MaskTest, test_mask_interruptible_reopens_inside_mask) {
  EventLog log;
  Exit<void> e = run([&] {
    Uninterruptible mask;
    weft::interrupt();
    {
      Interruptible open;
      EXPECT_TRUE(this_fiber::interruptible());
      try {
        this_fiber::check_interrupt();
      } catch (const Interrupted&) {
        log.add("delivered in Interruptible");
        throw;
      }
    }
  });
  EXPECT_TRUE(e.interrupted());
  EXPECT_EQ(log.count("delivered in Interruptible"), 1);
}

TEST_P(MaskTest, test_mask_child_starts_interruptible_whatever_the_parent) {
  Exit<bool> e = run([&] {
    Uninterruptible mask;
    return fork([] { return this_fiber::interruptible(); }).join();
  });
  EXPECT_TRUE(e.value());
}

TEST_P(MaskTest, test_mask_fork_uninterruptible_starts_masked_and_keeps_value) {
  Exit<void> e = run([&] {
    ForkOptions o;
    o.uninterruptible = true;
    std::atomic<bool> started{false};
    Fiber<int> f = fork(
        [&] {
          started = true;
          EXPECT_FALSE(this_fiber::interruptible());
          while (!this_fiber::interrupt_requested()) this_fiber::yield();
          this_fiber::sleep_for(std::chrono::milliseconds(2));
          return 9;
        },
        o);
    f.interrupt_fork();
    Exit<int> fe = f.await();
    // Forked uninterruptible: it runs even when interrupted before starting,
    // and the whole fiber is masked, so the value is kept (DESIGN 3.5).
    EXPECT_TRUE(started.load());
    ASSERT_TRUE(fe.ok());
    EXPECT_EQ(fe.value(), 9);
  });
  EXPECT_TRUE(e.ok());
}

TEST_P(MaskTest, test_mask_self_interrupt_throws_at_once_when_interruptible) {
  EventLog log;
  Exit<void> e = run([&] {
    try {
      weft::interrupt();
      log.add("unreachable");
    } catch (const Interrupted& i) {
      log.add("thrown at once");
      EXPECT_EQ(i.cause().interruptors(), std::vector<FiberId>{this_fiber::id()});
      throw;
    }
  });
  EXPECT_TRUE(e.interrupted());
  EXPECT_EQ(log.events(), std::vector<std::string>{"thrown at once"});
}

TEST_P(MaskTest, test_mask_fiber_interrupt_on_self_inside_mask_is_an_error) {
  Exit<void> e = run([&] {
    auto self = std::make_shared<Fiber<void>>();
    std::atomic<bool> ready{false};
    Fiber<void> f = fork([&] {
      while (!ready) this_fiber::yield();
      Uninterruptible mask;
      try {
        (void)self->interrupt();
        ADD_FAILURE() << "interrupt() on self inside a mask must throw";
      } catch (const std::logic_error& x) {
        EXPECT_NE(std::string(x.what()).find("would wait for itself"), std::string::npos);
      }
    });
    *self = f;
    ready = true;
    // The request was still recorded; it ends at the interruptible boundary.
    EXPECT_TRUE(f.await().interrupted());
  });
  EXPECT_TRUE(e.ok());
}

TEST_P(MaskTest, test_mask_fiber_interrupt_on_self_when_interruptible_stops_it) {
  EventLog log;
  Exit<void> e = run([&] {
    auto self = std::make_shared<Fiber<void>>();
    std::atomic<bool> ready{false};
    Fiber<void> f = fork([&] {
      while (!ready) this_fiber::yield();
      OnExit fin([&] { log.add("finalizer"); });
      (void)self->interrupt();
      log.add("unreachable");
    });
    *self = f;
    ready = true;
    EXPECT_TRUE(f.await().interrupted());
  });
  EXPECT_TRUE(e.ok());
  EXPECT_EQ(log.events(), std::vector<std::string>{"finalizer"});
}

// Checked in every build (WEFT_CHECK), not only with WEFT_DEBUG_ASSERTS.
TEST(MaskDeathTest, test_mask_guards_out_of_order_assert) {
  EXPECT_DEATH(
      {
        Runtime rt({.workers = 1});
        (void)rt.block_on([] {
          auto* outer = new Uninterruptible;
          Uninterruptible inner;
          delete outer;  // destroyed before the inner guard
        });
      },
      "out of order");
}

}  // namespace
}  // namespace weft
