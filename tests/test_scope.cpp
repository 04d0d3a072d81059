// DESIGN 3.6: Scope, the RAII nursery.
#include "support/weft_test.hpp"

#include <atomic>
#include <stdexcept>

namespace weft {
namespace {

using test::EventLog;
using test::kForever;

class ScopeTest : public test::RuntimeTest {};
WEFT_RUNTIME_TEST_SUITE(ScopeTest);

TEST_P(ScopeTest, test_scope_children_borrow_locals) {
  Exit<long> e = run([] {
    std::vector<long> data(1000);
    for (long i = 0; i < 1000; ++i) data[static_cast<std::size_t>(i)] = i;
    std::atomic<long> sum{0};  // declared before the scope: borrowed safely
    {
      Scope scope;
      for (int part = 0; part < 10; ++part)
        scope.fork([&, part] {
          long s = 0;
          for (int i = part * 100; i < (part + 1) * 100; ++i) {
            s += data[static_cast<std::size_t>(i)];
            if (i % 17 == 0) this_fiber::yield();
          }
          sum += s;
        });
      scope.join();
    }
    return sum.load();
  });
  EXPECT_EQ(e.value(), 999L * 1000 / 2);
}

TEST_P(ScopeTest, test_scope_first_failure_interrupts_the_rest) {
  EventLog log;
  Exit<void> e = run([&] {
    Scope scope;
    std::atomic<int> started{0};
    for (int i = 0; i < 3; ++i)
      scope.fork([&] {
        OnExit fin([&] { log.add("sibling finalizer"); });
        ++started;
        this_fiber::sleep_for(kForever);
      });
    scope.fork([&] {
      while (started.load() < 3) this_fiber::yield();
      throw std::runtime_error("child failed");
    });
    try {
      scope.join();
      ADD_FAILURE() << "join must rethrow";
    } catch (const std::runtime_error& x) {
      EXPECT_STREQ(x.what(), "child failed");
      log.add("join rethrew");
    }
  });
  ASSERT_TRUE(e.ok());
  auto events = log.events();
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events.back(), "join rethrew");
  EXPECT_EQ(log.count("sibling finalizer"), 3);
}

TEST_P(ScopeTest, test_scope_several_failures_become_cause_error) {
  Exit<void> e = run([&] {
    Scope scope;
    std::atomic<int> arrived{0};
    for (int i = 0; i < 2; ++i)
      scope.fork([&, i] {
        // Both fail before either can interrupt the other: the failures are
        // thrown masked, after both arrived.
        Uninterruptible mask;
        ++arrived;
        while (arrived.load() < 2) this_fiber::yield();
        throw std::runtime_error("failure " + std::to_string(i));
      });
    try {
      scope.join();
      ADD_FAILURE();
    } catch (const CauseError& ce) {
      EXPECT_EQ(ce.cause().failures().size(), 2u);
    }
  });
  EXPECT_TRUE(e.ok());
}

TEST_P(ScopeTest, test_scope_destructor_interrupts_and_awaits) {
  EventLog log;
  Exit<void> e = run([&] {
    {
      Scope scope;
      scope.fork([&] {
        OnExit fin([&] { log.add("child finalizer"); });
        this_fiber::sleep_for(kForever);
      });
      this_fiber::yield();
    }
    log.add("scope closed");
  });
  ASSERT_TRUE(e.ok());
  auto events = log.events();
  EXPECT_EQ(events.back(), "scope closed");
  EXPECT_LE(log.count("child finalizer"), 1);  // 0 if interrupted before it started
}

TEST_P(ScopeTest, test_scope_owner_interrupted_during_join) {
  std::atomic<int> finalizers{0};
  Exit<void> e = run([&] {
    std::atomic<int> started{0};
    Fiber<void> owner = fork([&] {
      Scope scope;
      for (int i = 0; i < 4; ++i)
        scope.fork([&] {
          OnExit fin([&] { ++finalizers; });
          ++started;
          this_fiber::sleep_for(kForever);
        });
      scope.join();
    });
    while (started.load() < 4) this_fiber::yield();
    EXPECT_TRUE(owner.interrupt().interrupted());
    EXPECT_EQ(finalizers.load(), 4);
  });
  EXPECT_TRUE(e.ok());
}

TEST(ScopeMisuse, test_scope_outside_fiber_throws) {
  EXPECT_THROW(Scope{}, std::logic_error);
}

}  // namespace
}  // namespace weft
