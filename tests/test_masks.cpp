// DESIGN 3.3: Uninterruptible, Interruptible, restore, ForkOptions::uninterruptible.
#include "support/weft_test.hpp"

#include <atomic>
#include <stop_token>
#include <thread>

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
  EXPECT_EQ(log.events(),
            (std::vector<std::string>{"masked sleep completed", "mask closed",
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
  EXPECT_EQ(log.events(),
            (std::vector<std::string>{"self-interrupt recorded", "inner closed, still masked"}));
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

// this_fiber::stop_token() follows the mask (DESIGN 3.3): a token taken
// where no interrupt can be delivered never fires, so stop-aware code called
// from a mask or a finalizer runs to the end.
TEST_P(MaskTest, test_mask_stop_token_taken_in_mask_ignores_pending_interrupt) {
  std::atomic<bool> possible{true};
  std::atomic<bool> requested{true};
  std::atomic<bool> requested_later{true};
  Exit<void> e = run([&] {
    Latch masked(1);
    Fiber<void> target = fork([&] {
      Uninterruptible mask;
      masked.count_down();
      while (!this_fiber::interrupt_requested()) this_fiber::yield();  // masked: not delivered
      std::stop_token token = this_fiber::stop_token();
      possible = token.stop_possible();
      requested = token.stop_requested();
      weft::interrupt();  // a second request, recorded while masked
      requested_later = token.stop_requested();
    });
    masked.wait();
    target.interrupt_fork();
    EXPECT_TRUE(target.await().interrupted());
  });
  ASSERT_TRUE(e.ok());
  EXPECT_FALSE(possible.load());
  EXPECT_FALSE(requested.load());
  EXPECT_FALSE(requested_later.load());
}

TEST_P(MaskTest, test_mask_stop_token_in_finalizer_during_interruption_never_fires) {
  std::atomic<int> stops_seen{-1};
  std::atomic<bool> catch_possible{true};
  Exit<void> e = run([&] {
    Latch parked(1);
    Fiber<void> target = fork([&] {
      OnExit flush([&] {
        // A std::stop_token-aware flush: it must not see the interrupt.
        std::stop_token token = this_fiber::stop_token();
        int stops = 0;
        for (int chunk = 0; chunk < 3; ++chunk) {
          if (token.stop_requested()) ++stops;
          this_fiber::yield();  // a finalizer may yield
        }
        stops_seen = stops;
      });
      try {
        parked.count_down();
        this_fiber::sleep_for(kForever);
      } catch (const Interrupted&) {
        catch_possible = this_fiber::stop_token().stop_possible();  // a catch block: masked too
        throw;
      }
    });
    parked.wait();
    test::wait_parked(target);
    EXPECT_TRUE(target.interrupt().interrupted());
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(stops_seen.load(), 0);
  EXPECT_FALSE(catch_possible.load());
}

TEST_P(MaskTest, test_mask_stop_token_taken_interruptible_fires_on_interrupt) {
  std::atomic<int> callbacks{0};
  std::atomic<bool> after_mask{false};
  Exit<void> e = run([&] {
    Latch registered(1);
    Latch fired(1);
    Fiber<void> target = fork([&] {
      std::stop_token token = this_fiber::stop_token();
      EXPECT_TRUE(token.stop_possible());
      std::stop_callback on_stop(token, [&] {
        ++callbacks;
        fired.count_down();
      });
      registered.count_down();
      this_fiber::sleep_for(kForever);
    });
    registered.wait();
    target.interrupt_fork();  // the callback runs here, on the interrupter
    fired.wait();
    EXPECT_TRUE(target.await().interrupted());

    // Taken after a mask closes with an interrupt pending: already stopped.
    Fiber<void> late = fork([&] {
      {
        Uninterruptible mask;
        weft::interrupt();
      }
      after_mask = this_fiber::stop_token().stop_requested();  // not a yield point
    });
    EXPECT_TRUE(late.await().interrupted());
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(callbacks.load(), 1);
  EXPECT_TRUE(after_mask.load());
}

// On a plain thread the guards are a documented no-op (a thread cannot be
// interrupted): the queries stay consistent with that.
TEST(MaskPlainThread, test_mask_guards_on_plain_thread_are_noops) {
  std::vector<bool> seen;
  int restored = 0;
  std::thread t([&] {
    seen.push_back(this_fiber::interruptible());
    {
      Uninterruptible mask;
      seen.push_back(this_fiber::interruptible());
      seen.push_back(this_fiber::interrupt_requested());
      seen.push_back(this_fiber::stop_token().stop_possible());
      restored = mask.restore([] { return this_fiber::interruptible() ? -1 : 42; });
      {
        Interruptible open;
        seen.push_back(this_fiber::interruptible());  // still not interruptible
      }
      this_fiber::check_interrupt();  // no effect
    }
    seen.push_back(this_fiber::interruptible());
  });
  t.join();
  EXPECT_EQ(seen, (std::vector<bool>{false, false, false, false, false, false}));
  EXPECT_EQ(restored, 42);
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
