// FiberLocal<T> (DESIGN §1 "Synchronisation"): a value per fiber, copied at
// fork, independent afterwards, restored by Scoped, destroyed exactly once.
#include "support/weft_test.hpp"

#include <weft/fiber_local.hpp>

#include <atomic>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace weft {
namespace {

using test::kForever;

// Counted counts its live instances and every construction and destruction,
// so a test can check that each value is destroyed exactly once.
struct Counted {
  static inline std::atomic<int> constructed{0};
  static inline std::atomic<int> destroyed{0};
  static int live() { return constructed.load() - destroyed.load(); }

  explicit Counted(int v = 0) : value(v) { ++constructed; }
  Counted(const Counted& o) : value(o.value) { ++constructed; }
  Counted(Counted&& o) noexcept : value(o.value) { ++constructed; }
  Counted& operator=(const Counted&) = default;
  ~Counted() { ++destroyed; }  // a second destruction shows as live() < 0 (and under ASan)
  int value;
};

class FiberLocalTest : public test::RuntimeTest {
 protected:
  void SetUp() override {
    test::RuntimeTest::SetUp();
    counted_before_ = Counted::live();
  }
  // drain_runtime() replaces the runtime: every fiber has ended and every
  // control block is released, so every fiber's values are gone.
  void drain_runtime() {
    rt_.reset();
    rt_ = std::make_unique<Runtime>(RuntimeOptions{.workers = GetParam()});
  }
  int counted_before_ = 0;
};
WEFT_RUNTIME_TEST_SUITE(FiberLocalTest);

TEST_P(FiberLocalTest, test_fiber_local_get_is_the_initial_value) {
  FiberLocal<int> number(7);
  FiberLocal<std::string> text;
  Exit<std::string> e = run([&] { return std::to_string(number.get()) + "/" + text.get(); });
  EXPECT_EQ(e.value(), "7/");
  // A fiber that never set a local has no table at all.
  EXPECT_TRUE(run([] { return detail::current_locals().empty(); }).value());
}

TEST_P(FiberLocalTest, test_fiber_local_set_then_get) {
  FiberLocal<std::string> request("none");
  Exit<std::string> e = run([&] {
    request.set("req-1");
    std::string first = request.get();
    request.set("req-2");
    return first + "," + request.get();
  });
  EXPECT_EQ(e.value(), "req-1,req-2");
}

TEST_P(FiberLocalTest, test_fiber_local_locals_are_per_fiber) {
  FiberLocal<int> a(0);
  FiberLocal<int> b(0);
  Exit<std::vector<int>> e = run([&] {
    a.set(1);
    b.set(2);
    Fiber<int> sibling = fork([&] {
      a.set(10);
      return a.get() * 100 + b.get();
    });
    const int seen = sibling.join();
    return std::vector<int>{a.get(), b.get(), seen};
  });
  EXPECT_EQ(e.value(), (std::vector<int>{1, 2, 1002}));
}

TEST_P(FiberLocalTest, test_fiber_local_child_copies_parent_value_at_fork) {
  FiberLocal<std::string> request("none");
  Exit<std::string> e = run([&] {
    request.set("req-42");
    return fork([&] { return request.get(); }).join();
  });
  EXPECT_EQ(e.value(), "req-42");
}

TEST_P(FiberLocalTest, test_fiber_local_parent_set_after_fork_not_seen_by_child) {
  FiberLocal<int> local(0);
  Exit<std::vector<int>> e = run([&] {
    local.set(1);
    Deferred<void> parent_changed;
    Fiber<int> child = fork([&] {
      parent_changed.await();
      return local.get();
    });
    local.set(2);  // the table is shared with the child: copied first
    parent_changed.succeed();
    const int child_saw = child.join();
    return std::vector<int>{child_saw, local.get()};
  });
  EXPECT_EQ(e.value(), (std::vector<int>{1, 2}));
}

TEST_P(FiberLocalTest, test_fiber_local_child_set_not_seen_by_parent) {
  FiberLocal<int> local(0);
  Exit<std::vector<int>> e = run([&] {
    local.set(1);
    Deferred<void> child_changed;
    Deferred<void> parent_looked;
    int parent_saw_meanwhile = -1;
    Fiber<int> child = fork([&] {
      local.set(5);
      child_changed.succeed();
      parent_looked.await();
      return local.get();
    });
    child_changed.await();
    parent_saw_meanwhile = local.get();
    parent_looked.succeed();
    const int child_saw = child.join();
    return std::vector<int>{parent_saw_meanwhile, child_saw, local.get()};
  });
  EXPECT_EQ(e.value(), (std::vector<int>{1, 5, 1}));
}

TEST_P(FiberLocalTest, test_fiber_local_grandchild_and_unset_local) {
  FiberLocal<int> set_one(0);
  FiberLocal<int> never_set(9);
  Exit<std::vector<int>> e = run([&] {
    set_one.set(3);
    return fork([&] {
             return fork([&] { return std::vector<int>{set_one.get(), never_set.get()}; }).join();
           })
        .join();
  });
  EXPECT_EQ(e.value(), (std::vector<int>{3, 9}));
}

// fork_daemon (and so disconnect) copies like fork; Runtime::spawn and
// block_on start roots at the initial values even from a fiber.
TEST_P(FiberLocalTest, test_fiber_local_daemon_copies_and_roots_start_fresh) {
  FiberLocal<int> local(0);
  Exit<std::vector<int>> e = run([&] {
    local.set(4);
    const int daemon = fork_daemon([&] { return local.get(); }).join();
    const int disconnected = disconnect([&] { return local.get(); });
    const int root = rt().spawn([&] { return local.get(); }).join();
    return std::vector<int>{daemon, disconnected, root};
  });
  EXPECT_EQ(e.value(), (std::vector<int>{4, 4, 0}));
}

TEST_P(FiberLocalTest, test_fiber_local_combinator_children_inherit) {
  FiberLocal<int> local(0);
  Exit<std::vector<int>> e = run([&] {
    local.set(6);
    std::vector<int> seen;
    auto [x, y] = all([&] { return local.get(); }, [&] { return local.get() + 1; });
    seen.push_back(x);
    seen.push_back(y);
    seen.push_back(race([&] { return local.get(); },
                        [] {
                          this_fiber::sleep_for(kForever);
                          return 0;
                        }));
    seen.push_back(timeout(kForever, [&] { return local.get(); }).value_or(-1));
    Scope scope;
    Fiber<int> scoped = scope.fork([&] { return local.get(); });
    scope.join();
    seen.push_back(scoped.join());
    return seen;
  });
  EXPECT_EQ(e.value(), (std::vector<int>{6, 7, 6, 6, 6}));
}

TEST_P(FiberLocalTest, test_fiber_local_scoped_restores_on_normal_exit) {
  FiberLocal<std::string> ctx("root");
  Exit<std::vector<std::string>> e = run([&] {
    std::vector<std::string> seen;
    {
      FiberLocal<std::string>::Scoped outer(ctx, "outer");
      seen.push_back(ctx.get());
      {
        FiberLocal<std::string>::Scoped inner(ctx, "inner");
        seen.push_back(ctx.get());
        ctx.set("set inside");  // the scope still restores what was before it
        seen.push_back(ctx.get());
      }
      seen.push_back(ctx.get());
    }
    seen.push_back(ctx.get());
    // Back at the initial value: the fiber's table is gone again.
    seen.push_back(detail::current_locals().empty() ? "no table" : "table");
    return seen;
  });
  EXPECT_EQ(e.value(), (std::vector<std::string>{"outer", "inner", "set inside", "outer", "root",
                                                 "no table"}));
}

TEST_P(FiberLocalTest, test_fiber_local_scoped_restores_on_exception) {
  FiberLocal<int> local(0);
  Exit<std::vector<int>> e = run([&] {
    local.set(1);
    std::vector<int> seen;
    try {
      FiberLocal<int>::Scoped s(local, 2);
      OnExit finalizer([&] { seen.push_back(local.get()); });  // runs inside the scope
      throw test::Boom("boom");
    } catch (const test::Boom&) {
      seen.push_back(local.get());
    }
    return seen;
  });
  EXPECT_EQ(e.value(), (std::vector<int>{2, 1}));
}

TEST_P(FiberLocalTest, test_fiber_local_scoped_restores_on_interruption) {
  FiberLocal<int> local(0);
  std::atomic<int> inside_scope{-1};
  std::atomic<int> after_scope{-1};
  Exit<void> e = run([&] {
    Latch parked(1);
    Fiber<void> target = fork([&] {
      local.set(1);
      OnExit after([&] { after_scope = local.get(); });  // runs after the Scoped closed
      FiberLocal<int>::Scoped s(local, 2);
      OnExit inside([&] { inside_scope = local.get(); });
      parked.count_down();
      this_fiber::sleep_for(kForever);
    });
    parked.wait();
    test::wait_parked(target);
    EXPECT_TRUE(target.interrupt().interrupted());
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(inside_scope.load(), 2);
  EXPECT_EQ(after_scope.load(), 1);
}

// The value follows the fiber across workers, where a thread_local would
// not (not asserted: migration is up to the scheduler).
TEST_P(FiberLocalTest, test_fiber_local_value_survives_migration) {
  constexpr int kFibers = 8;
  constexpr int kYields = 2000;
  FiberLocal<int> local(-1);
  std::atomic<int> wrong{0};
  std::atomic<int> thread_changes{0};
  Exit<void> e = run([&] {
    std::vector<Fiber<void>> fibers;
    for (int i = 0; i < kFibers; ++i) {
      fibers.push_back(fork([&, i] {
        local.set(i);
        std::thread::id last = std::this_thread::get_id();
        for (int n = 0; n < kYields; ++n) {
          this_fiber::yield();
          if (local.get() != i) ++wrong;
          // std::this_thread::get_id() is not read across the yield: it is
          // fetched afresh each iteration (and only reported, not asserted).
          const std::thread::id now = std::this_thread::get_id();
          if (now != last) ++thread_changes;
          last = now;
        }
      }));
    }
    for (Fiber<void>& f : fibers) f.join();
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(wrong.load(), 0);
  RecordProperty("thread_changes", thread_changes.load());
}

TEST_P(FiberLocalTest, test_fiber_local_values_destroyed_exactly_once) {
  {
    FiberLocal<Counted> local(Counted(0));
    Exit<void> e = run([&] {
      local.set(Counted(1));
      std::vector<Fiber<int>> children;
      for (int i = 0; i < 3; ++i) {
        children.push_back(fork([&, i] {
          const int inherited = local.get().value;
          if (i != 0) local.set(Counted(10 + i));  // child 0 keeps the shared value
          this_fiber::yield();
          return inherited;
        }));
      }
      local.set(Counted(2));  // copies the table shared with the children
      { FiberLocal<Counted>::Scoped s(local, Counted(3)); }
      for (Fiber<int>& c : children) EXPECT_EQ(c.join(), 1);
      EXPECT_EQ(local.get().value, 2);
    });
    ASSERT_TRUE(e.ok());
    drain_runtime();
    // Only the initial value is left.
    EXPECT_EQ(Counted::live(), counted_before_ + 1);
  }
  EXPECT_EQ(Counted::live(), counted_before_);
}

// A fiber's values go at its end (before its Exit is published), not when
// the last handle to it goes.
TEST_P(FiberLocalTest, test_fiber_local_values_released_at_the_end_not_with_the_handle) {
  FiberLocal<Counted> local;
  Exit<void> e = run([&] {
    const auto before = Counted::live();
    Fiber<void> child = fork([&] { local.set(Counted(7)); });
    child.join();
    EXPECT_EQ(Counted::live(), before);  // `child` still holds the fiber
  });
  ASSERT_TRUE(e.ok());
}

TEST_P(FiberLocalTest, test_fiber_local_values_outlive_the_local_object) {
  auto local = std::make_unique<FiberLocal<Counted>>();
  Exit<void> e = run([&] {
    Deferred<void> local_gone;
    Latch child_set(1);
    FiberLocal<Counted>* l = local.get();
    Fiber<void> child = fork([&, l] {
      l->set(Counted(5));
      child_set.count_down();
      local_gone.await();  // the FiberLocal is destroyed while we hold a value
    });
    l->set(Counted(6));
    child_set.wait();
    local.reset();
    local_gone.succeed();
    child.join();
  });
  ASSERT_TRUE(e.ok());
  drain_runtime();
  EXPECT_EQ(Counted::live(), counted_before_);
}

TEST_P(FiberLocalTest, test_fiber_local_keys_are_not_reused) {
  // A new FiberLocal in the storage of a dead one must not see its values.
  std::optional<FiberLocal<int>> slot;
  Exit<std::vector<int>> e = run([&] {
    slot.emplace(0);
    slot->set(5);
    const int before = slot->get();
    slot.reset();
    slot.emplace(0);  // same address
    return std::vector<int>{before, slot->get()};
  });
  EXPECT_EQ(e.value(), (std::vector<int>{5, 0}));
}

TEST_P(FiberLocalTest, test_fiber_local_finalizers_read_locals) {
  FiberLocal<std::string> request("none");
  test::EventLog log;
  struct ReadsOnDestroy {
    FiberLocal<std::string>* local;
    test::EventLog* log;
    ~ReadsOnDestroy() {
      if (local != nullptr) log->add("capture: " + local->get());
    }
    ReadsOnDestroy(FiberLocal<std::string>* l, test::EventLog* g) : local(l), log(g) {}
    ReadsOnDestroy(ReadsOnDestroy&& o) noexcept
        : local(std::exchange(o.local, nullptr)), log(o.log) {}
  };
  Exit<void> e = run([&] {
    Latch parked(1);
    Fiber<void> target = fork([&, guard = ReadsOnDestroy(&request, &log)] {
      request.set("req-7");
      OnExit finalizer([&](const Cause& why) {
        log.add(std::string(why.empty() ? "ok" : "interrupted") + ": " + request.get());
      });
      parked.count_down();
      this_fiber::sleep_for(kForever);
    });
    parked.wait();
    test::wait_parked(target);
    EXPECT_TRUE(target.interrupt().interrupted());
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(log.events(), (std::vector<std::string>{"interrupted: req-7", "capture: req-7"}));
}

// Outside any fiber a plain thread has its own values, like one fiber; the
// roots it starts do not inherit them; they are destroyed at thread exit.
TEST_P(FiberLocalTest, test_fiber_local_plain_thread_has_its_own_values) {
  FiberLocal<int> local(0);
  std::vector<int> seen;
  std::thread t([&] {
    seen.push_back(local.get());
    local.set(3);
    seen.push_back(local.get());
    {
      FiberLocal<int>::Scoped s(local, 4);
      seen.push_back(local.get());
      seen.push_back(rt().block_on([&] { return local.get(); }).value());  // a fresh root
    }
    seen.push_back(local.get());
  });
  t.join();
  std::thread other([&] { seen.push_back(local.get()); });
  other.join();
  EXPECT_EQ(seen, (std::vector<int>{0, 3, 4, 0, 3, 0}));

  FiberLocal<Counted> counted;
  std::thread owner([&] { counted.set(Counted(1)); });
  owner.join();                                     // its value went with the thread
  EXPECT_EQ(Counted::live(), counted_before_ + 1);  // the initial value only
}

}  // namespace
}  // namespace weft
