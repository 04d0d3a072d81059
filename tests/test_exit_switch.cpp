// The exit by direct switch (docs/internals.md, "Direct switch"): a fiber
// that ends switches straight to its worker's next fiber, which releases the
// dead fiber's stack and the runtime's reference; and the monitor's hazard
// slot, which holds a fiber it reads wherever that fiber ends.
#include "support/scale.hpp"
#include "support/weft_test.hpp"

#include "fiber/fiber_control.hpp"
#include "scheduler/scheduler.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

namespace weft {
namespace {

class ExitSwitchTest : public test::RuntimeTest {};
WEFT_RUNTIME_TEST_SUITE(ExitSwitchTest);

// counted() is a src-private event count of the calling fiber's runtime.
std::uint64_t counted(detail::Counter c) {
  return detail::current_worker_any()->scheduler().counted(c);
}
std::uint64_t direct_exits() { return counted(detail::Counter::direct_exits); }

// worker_index() is the index of the worker running the calling fiber.
int worker_index() { return static_cast<int>(detail::current_worker_any()->index()); }

TEST_P(ExitSwitchTest, test_exit_switch_ends_straight_into_its_joiner) {
  // fork + join: the child's end wakes the joiner into the LIFO slot and
  // switches straight to it.
  constexpr std::uint64_t kRounds = test::race_rounds(std::uint64_t{2000});
  Exit<std::uint64_t> e = run([] {
    const std::uint64_t before = direct_exits();
    std::uint64_t sum = 0;
    for (std::uint64_t i = 0; i < kRounds; ++i) sum += fork([i] { return i; }).join();
    EXPECT_EQ(sum, kRounds * (kRounds - 1) / 2);
    return direct_exits() - before;
  });
  ASSERT_TRUE(e.ok());
  // One worker: every end but those on a fairness or timer tick goes direct
  // (1 in 61 ticks). More workers: the joiner or the child may be stolen.
  if (workers() == 1) {
    EXPECT_GE(e.value(), kRounds / 2);
  }
}

TEST_P(ExitSwitchTest, test_exit_switch_with_nothing_runnable_goes_to_the_loop) {
  // The forker waits for a plain thread (its wake is injected: never a
  // direct pick), so the child ends with its worker's queues empty.
  if (workers() != 1) GTEST_SKIP() << "another worker may run the forker's wake";
  Exit<std::uint64_t> e = run([] {
    const std::uint64_t before = direct_exits();
    Deferred<void> go;
    std::atomic<bool> ran{false};
    Fiber<void> child = fork([&] { ran = true; });
    std::thread waker([&] {
      while (!child.done()) std::this_thread::yield();
      go.succeed();
    });
    go.await();  // parks: the child runs (a direct switch) and ends alone
    waker.join();
    EXPECT_TRUE(ran.load());
    child.join();
    return direct_exits() - before;
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e.value(), 0u) << "an exit with nothing runnable switched to a fiber";
}

TEST_P(ExitSwitchTest, test_exit_switch_after_the_fiber_it_woke_was_stolen) {
  // The child wakes a waiter (into its worker's LIFO slot), then keeps its
  // worker busy until the other worker has stolen the waiter and run it
  // (steal_stranded): its end finds the slot emptied by the thief.
  if (workers() < 2) GTEST_SKIP() << "needs a thief";
  Exit<bool> e = run([] {
    Deferred<void> wake;
    std::atomic<int> woken_on{-1};
    Fiber<void> waiter = fork([&] {
      wake.await();
      woken_on = worker_index();
    });
    test::wait_parked(waiter);
    std::atomic<int> child_on{-1};
    Fiber<void> child = fork([&] {
      child_on = worker_index();
      wake.succeed();
      // No yield point: the waiter stays in this worker's slot until a
      // thief takes it.
      while (woken_on.load() < 0) detail::cpu_relax();
    });
    child.join();
    waiter.join();
    EXPECT_NE(woken_on.load(), child_on.load()) << "the waiter was not stolen";
    return true;
  });
  EXPECT_TRUE(e.ok());
}

TEST_P(ExitSwitchTest, test_exit_switch_leaves_an_interrupted_unstarted_fiber_to_the_loop) {
  // A fiber ends with an interrupted, never-started daemon next in its LIFO
  // slot: its exit goes to the worker loop, which ends the daemon there
  // (its captures are destroyed on no fiber's stack, DESIGN 3.2). The other
  // workers are held busy: a thief could take the daemon from the LIFO slot
  // (steal_stranded) and start it before the interrupt, if the OS stops the
  // ender's thread in between (a dev `ctest -j2` run, 4 workers).
  Exit<bool> e = run([this] {
    test::HoldOtherWorkers hold(workers());
    const std::uint64_t before = direct_exits();
    Semaphore ended(0);
    std::atomic<detail::FiberCore*> destroyed_in{nullptr};
    std::atomic<bool> destroyed{false};
    std::shared_ptr<int> capture(new int(0), [&](int* p) {
      destroyed_in = detail::current_fiber();
      destroyed = true;
      delete p;
      ended.release();
    });
    std::atomic<bool> daemon_ran{false};
    Fiber<void> daemon;
    Fiber<void> ender = fork([&] {
      daemon = fork_daemon([&daemon_ran, capture = std::move(capture)] { daemon_ran = true; });
      daemon.interrupt_fork();
    });
    ended.acquire();  // parks: the ender runs, ends, and the loop ends the daemon
    EXPECT_TRUE(destroyed.load());
    EXPECT_EQ(destroyed_in.load(), nullptr) << "the daemon ended on another fiber's stack";
    ender.join();
    Exit<void> d = daemon.await();
    EXPECT_TRUE(d.interrupted());
    EXPECT_FALSE(daemon_ran.load());
    if (workers() == 1) {
      EXPECT_EQ(direct_exits() - before, 0u);
    }
    hold.release();
    return true;
  });
  EXPECT_TRUE(e.ok());
}

// Probe records the fiber its destructor runs on (a moved-from one does not).
struct Probe {
  std::atomic<detail::FiberCore*>* where;
  explicit Probe(std::atomic<detail::FiberCore*>* w) : where(w) {}
  Probe(Probe&& o) noexcept : where(std::exchange(o.where, nullptr)) {}
  Probe& operator=(Probe&&) = delete;
  ~Probe() {
    if (where != nullptr) *where = detail::current_fiber();
  }
};

TEST_P(ExitSwitchTest, test_exit_switch_drops_a_last_reference_in_the_loop) {
  // Nobody holds the handle when the child ends: the runtime's reference is
  // the last, and dropping it destroys the result (user code). That is the
  // worker loop's job, not the incoming fiber's in the middle of its switch.
  Exit<bool> e = run([] {
    auto* const kUnset = reinterpret_cast<detail::FiberCore*>(1);
    std::atomic<detail::FiberCore*> destroyed_in{kUnset};
    Semaphore started(0);
    {
      Fiber<Probe> child = fork([&] {
        started.release();  // the forker goes to this worker's LIFO slot
        return Probe(&destroyed_in);
      });
    }  // the handle is dropped before the child ends
    started.acquire();
    test::yield_until([&] { return destroyed_in.load() != kUnset; });
    EXPECT_EQ(destroyed_in.load(), nullptr) << "the result was destroyed on a fiber's stack";
    return true;
  });
  EXPECT_TRUE(e.ok());
}

TEST_P(ExitSwitchTest, test_exit_switch_during_shutdown) {
  // The runtime's destructor interrupts a root that awaits parked children;
  // each child's end wakes the root's masked await and switches to it.
  std::atomic<int> started{0}, ended{0};
  // Outlives the runtime: the root's frame is gone (its await interrupted)
  // before its end awaits the children, and a child counted in `started`
  // may not have reached never.await() yet.
  Deferred<void> never;
  {
    RuntimeOptions o;
    o.workers = workers();
    Runtime local(o);
    Fiber<void> root = local.spawn([&] {
      std::vector<Fiber<void>> kids;
      for (int i = 0; i < 16; ++i) {
        kids.push_back(fork([&] {
          ++started;
          struct End {
            std::atomic<int>& n;
            ~End() { ++n; }
          } end{ended};
          (void)never.await();
        }));
      }
      for (auto& k : kids) k.join();
    });
    while (started.load() < 16) std::this_thread::yield();
  }  // ~Runtime: shutdown
  EXPECT_EQ(ended.load(), 16);
}

// --- The monitor's hazard slot ------------------------------------------------

// The monitor reads a fiber that computes without yield points (a stall
// report); during the read (the hook), the fiber parks, is woken and run by
// the other worker, and ends there. That worker's finish() must wait for
// the read: before the slot moved to the Scheduler it checked only its own.
TEST(ExitSwitchMonitorTest, test_exit_switch_monitor_read_holds_a_fiber_ending_on_another_worker) {
  RuntimeOptions o;
  o.workers = 2;
  o.monitor_interval = std::chrono::microseconds(500);
  o.stall_threshold = std::chrono::milliseconds(5);
  o.on_stall = [](const StallReport&) {};
  Runtime rt(o);

  struct Hook final : detail::Scheduler::InspectHook {
    detail::Scheduler* sched = nullptr;
    std::atomic<std::uint64_t> target{0};
    std::atomic<bool> reading_target{false};
    std::atomic<bool> waited{false};  // finish() waited for this read
    std::atomic<bool> done{false};
    std::uint64_t waits_before = 0;
    void reading(detail::FiberControl& f) override {
      if (f.id().value() != target.load() || done.load()) return;
      waits_before = sched->hazard_waits();
      reading_target = true;
      // Until the fiber's end waits for us (bounded: the bug would wait forever).
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (sched->hazard_waits() == waits_before && std::chrono::steady_clock::now() < deadline)
        std::this_thread::yield();
      waited = sched->hazard_waits() != waits_before;
      done = true;
    }
  } hook;

  std::atomic<int> inspected_on{-1}, waker_on{-1}, ended_on{-1};
  std::atomic<bool> waker_ready{false};
  Exit<bool> e = rt.block_on([&] {
    hook.sched = detail::current_scheduler();
    hook.sched->set_inspect_hook(&hook);
    Deferred<void> wake;
    std::atomic<detail::FiberCore*> target{nullptr};
    {
      Fiber<void> f = fork([&] {
        inspected_on = worker_index();
        // No yield point until the waker runs on the other worker (this
        // one is ours meanwhile), then until the monitor reads us (a stall;
        // the blocked monitor no longer wakes workers, so the waker must
        // already be running).
        while (!waker_ready.load()) detail::cpu_relax();
        while (!hook.reading_target.load()) detail::cpu_relax();
        wake.await();  // parks; the waker's worker runs us next
        ended_on = worker_index();
      });
      hook.target = f.id().value();
      target = &detail::core_of(f);
    }  // the handle is dropped: the runtime's reference is the last
    Fiber<void> waker = fork([&] {
      waker_on = worker_index();  // not f's: f spins there until waker_ready
      waker_ready = true;
      // No yield point: stay on this worker. f is alive until woken.
      while (!hook.reading_target.load() || !test::parked(*target.load())) detail::cpu_relax();
      wake.succeed();  // f goes to this worker's LIFO slot...
    });                // ...and this end switches to it
    // Not joined yet: the waker's end then finds f (not a joiner) in its
    // worker's LIFO slot and switches to it there.
    test::yield_until([&] { return hook.done.load(); });
    waker.join();
    hook.sched->set_inspect_hook(nullptr);
    return true;
  });
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(hook.waited.load()) << "the fiber's end did not wait for the monitor's read";
  EXPECT_NE(waker_on.load(), inspected_on.load());
  // The end runs on the waker's worker unless the fiber was stolen back
  // from its LIFO slot in the instant before the waker's end: report it.
  RecordProperty("migrated", inspected_on.load() != ended_on.load() ? "yes" : "no");
}

}  // namespace
}  // namespace weft
