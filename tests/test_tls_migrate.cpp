// Thread-local access across a fiber switch that migrates the fiber to
// another worker thread. A compiler may compute a thread_local's address once
// per function and reuse it after a call that, for a fiber, resumes on
// another thread (Boost.Context issue #331; clang does this from -O1). weft
// reads the current fiber and worker only through the non-inlined accessors
// detail::current_fiber() / current_worker_any() (src/scheduler/worker.cpp),
// and the inline header paths (this_fiber::check_interrupt,
// detail::throw_if_interrupted, fork) call them. These tests run those inline
// paths in loops around switches that do migrate, and check after each switch
// that the fiber still sees itself, its worker and its interrupts. They matter
// most in the clang stage (the fuzz preset builds and runs this file at -O1).
#include "scheduler/scheduler.hpp"
#include "support/weft_test.hpp"

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace weft {
namespace {

using Clock = std::chrono::steady_clock;

class TlsMigrateTest : public test::RuntimeTest {};
// Migration needs a second worker.
INSTANTIATE_TEST_SUITE_P(Workers, TlsMigrateTest, ::testing::Values(2u, 4u), test::WorkerName);

// WorkerThreads checks the scheduler's view of "the worker running me"
// against the OS thread actually running: each worker always on one thread.
class WorkerThreads {
 public:
  // consistent() records (worker, thread); false if either was seen paired
  // with another.
  bool consistent(const void* worker, std::thread::id thread) {
    std::lock_guard lk(mu_);
    auto [w, new_worker] = by_worker_.emplace(worker, thread);
    auto [t, new_thread] = by_thread_.emplace(thread, worker);
    return w->second == thread && t->second == worker;
  }

 private:
  std::mutex mu_;
  std::map<const void*, std::thread::id> by_worker_;
  std::map<std::thread::id, const void*> by_thread_;
};

// os_thread() is the OS thread running the caller. Not std::this_thread::get_id()
// inline: glibc declares pthread_self() __attribute__((const)), so clang may
// reuse one call's result across a switch, the very bug these tests look for
// (in the test's own reads). noinline + a memory clobber stop that, as in
// weft's accessors (src/scheduler/worker.cpp).
[[gnu::noinline]] std::thread::id os_thread() noexcept {
  asm volatile("" ::: "memory");
  return std::this_thread::get_id();
}

// Seen is what the current fiber, its worker and its thread look like now.
struct Seen {
  FiberId id;
  const detail::FiberCore* fiber;
  const void* worker;
  std::thread::id thread;
};

// [[gnu::always_inline]]: the reads sit in the caller's body, next to its
// switches, as inline header code would.
[[gnu::always_inline]] inline Seen seen_now() {
  return {this_fiber::id(), detail::current_fiber(), detail::current_worker_any(), os_thread()};
}

// expect_self() checks, after a switch, that the fiber still sees itself.
std::string expect_self(const Seen& now, FiberId id, const detail::FiberCore* self,
                        WorkerThreads& workers) {
  if (now.id != id) return "this_fiber::id() changed across a switch";
  if (now.fiber != self) return "current_fiber() is another fiber after a switch";
  if (now.fiber->id() != id) return "current_fiber()->id() is not this fiber's id";
  if (now.worker == nullptr) return "no current worker inside a fiber";
  if (!workers.consistent(now.worker, now.thread))
    return "the current worker is not the one running on this thread";
  return {};
}

TEST_P(TlsMigrateTest, test_tls_migrate_fiber_sees_itself_after_forced_migrations) {
  // Each round the fiber forks a hog and parks on `gate`. If the hog runs on
  // the fiber's last thread, it computes there (no yield point) until the
  // fiber has resumed, so the release from this plain thread (the injection
  // queue) must resume the fiber on another worker: a forced migration.
  constexpr int kRounds = 300;
  constexpr int kYieldsPerRound = 8;
  Semaphore gate(0);
  std::atomic<bool> release_wanted{false};
  std::atomic<bool> resumed{false};
  WorkerThreads workers;
  Fiber<std::string> f = rt().spawn([&]() -> std::string {
    const FiberId id = this_fiber::id();
    const detail::FiberCore* self = detail::current_fiber();
    int migrations = 0, forced = 0;
    for (int round = 0; round < kRounds; ++round) {
      Seen before = seen_now();
      if (std::string e = expect_self(before, id, self, workers); !e.empty()) return e;
      resumed.store(false, std::memory_order_relaxed);
      Fiber<bool> hog = fork([&, thread = before.thread] {
        const bool same = os_thread() == thread;
        release_wanted.store(true, std::memory_order_release);
        const auto give_up = Clock::now() + std::chrono::seconds(5);
        while (same && !resumed.load(std::memory_order_acquire) && Clock::now() < give_up) {
        }
        return same;
      });
      gate.acquire();  // parks: the hog runs, this plain thread releases
      resumed.store(true, std::memory_order_release);
      Seen after = seen_now();
      if (std::string e = expect_self(after, id, self, workers); !e.empty()) return e;
      if (after.thread != before.thread) ++migrations;
      if (hog.join()) {
        if (after.thread == before.thread) return "resumed on the thread its hog was holding";
        ++forced;
      }
      // The inline header paths, around switches that may migrate too.
      for (int i = 0; i < kYieldsPerRound; ++i) {
        this_fiber::yield();
        this_fiber::check_interrupt();
        detail::throw_if_interrupted();
        if (std::string e = expect_self(seen_now(), id, self, workers); !e.empty()) return e;
      }
    }
    if (forced == 0 || migrations < forced) return "no forced migration happened";
    return "ok";
  });
  while (!f.done()) {
    if (release_wanted.exchange(false, std::memory_order_acq_rel))
      gate.release();
    else
      std::this_thread::yield();
  }
  Exit<std::string> e = f.await();
  EXPECT_EQ(e.value(), "ok");
}

TEST_P(TlsMigrateTest, test_tls_migrate_interrupt_seen_promptly_after_migrating) {
  // Fibers on every worker yield and check_interrupt() in a loop; this plain
  // thread interrupts each once it has done some rounds. A check_interrupt()
  // that starts after interrupt_fork() returned must throw, on whichever
  // thread the fiber now runs (a stale thread_local would read another
  // fiber's, or a plain thread's, state).
  const unsigned kFibers = 2 * workers();
  constexpr int kRoundsBeforeInterrupt = 2000;
  struct Looper {
    std::atomic<int> rounds{0};
    std::atomic<bool> interrupted{false};
  };
  std::vector<Looper> loopers(kFibers);
  WorkerThreads workers;
  std::vector<Fiber<std::string>> fibers;
  for (unsigned n = 0; n < kFibers; ++n) {
    fibers.push_back(rt().spawn([&, n]() -> std::string {
      Looper& me = loopers[n];
      const FiberId id = this_fiber::id();
      const detail::FiberCore* self = detail::current_fiber();
      for (;;) {
        this_fiber::yield();
        if (std::string e = expect_self(seen_now(), id, self, workers); !e.empty()) return e;
        const bool requested = me.interrupted.load(std::memory_order_acquire);
        this_fiber::check_interrupt();  // throws once requested
        if (requested) return "check_interrupt() missed an interrupt requested before it";
        me.rounds.fetch_add(1, std::memory_order_relaxed);
      }
    }));
  }
  for (unsigned n = 0; n < kFibers; ++n) {
    while (loopers[n].rounds.load(std::memory_order_relaxed) < kRoundsBeforeInterrupt)
      std::this_thread::yield();
    fibers[n].interrupt_fork();
    loopers[n].interrupted.store(true, std::memory_order_release);
  }
  for (unsigned n = 0; n < kFibers; ++n) {
    Exit<std::string> e = fibers[n].await();
    EXPECT_TRUE(e.interrupted()) << (e.ok() ? e.value() : e.cause().pretty());
  }
}

}  // namespace
}  // namespace weft
