// Randomized interrupt stress (DESIGN 3.1-3.5): random trees of fibers that
// yield, sleep, compute, nest masks, install finalizers (some of which
// suspend), swallow interrupts, fail and fork children, while interrupter
// fibers interrupt random fibers at random moments. Checks: every finalizer
// ran exactly once and in LIFO order, every Exit agrees with what happened,
// and (fixture) no fiber, handle or stack leaked.
//
// The seed is printed; rerun a failure with WEFT_SEED=<seed>. Scale with
// WEFT_STRESS_SCENARIOS (default 1200 scenarios per worker count, 240 under
// TSan; each makes ~80 interrupt/complete races).
#include "support/scale.hpp"
#include "support/weft_test.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <random>
#include <stdexcept>

namespace weft {
namespace {

using test::RuntimeTest;

struct Record {
  FiberId parent;
  FiberId id;
  bool started = false;        // written by the fiber itself
  bool completed = false;      // body returned normally
  bool threw_failure = false;  // body threw its own failure
  int installed = 0;           // finalizers installed
  int ran = 0;                 // finalizers run
  int lifo_violations = 0;
  int next_expected = -1;        // the finalizer that must run next
  std::atomic<int> targeted{0};  // interrupt requests aimed at it
  Fiber<void> handle;
};

struct World {
  std::mutex mu;
  std::deque<Record> records;  // stable addresses
  std::vector<Record*> live;   // interrupt targets
  std::vector<FiberId> interrupters;
  std::atomic<long> races{0};

  Record* add(FiberId parent) {
    std::lock_guard lk(mu);
    Record& r = records.emplace_back();
    r.parent = parent;
    return &r;
  }
  void publish(Record* r, Fiber<void> h) {
    std::lock_guard lk(mu);
    r->handle = std::move(h);
    live.push_back(r);
  }
  Fiber<void> pick(std::mt19937_64& rng, Record** out) {
    std::lock_guard lk(mu);
    if (live.empty()) return {};
    Record* r = live[rng() % live.size()];
    *out = r;
    return r->handle;
  }
};

void body(World& w, Record* r, std::uint64_t seed, int depth);

void run_ops(World& w, Record* r, std::mt19937_64& rng, int depth, int budget,
             std::vector<Fiber<void>>& kids) {
  for (int i = 0; i < budget; ++i) {
    switch (rng() % 10) {
      case 0:
        this_fiber::yield();
        break;
      case 1:
        this_fiber::sleep_for(std::chrono::microseconds(rng() % 50));
        break;
      case 2: {
        const int n = static_cast<int>(rng() % 2000);
        for (int j = 0; j < n; ++j)
          if (j % 64 == 0) this_fiber::check_interrupt();
        break;
      }
      case 3: {
        Uninterruptible mask;
        run_ops(w, r, rng, depth, 1 + static_cast<int>(rng() % 2), kids);
        break;
      }
      case 4:
        if (depth < 3) {
          Record* child = w.add(r->id);
          const std::uint64_t s = rng();
          Fiber<void> h = fork([&w, child, s, depth] { body(w, child, s, depth + 1); });
          w.publish(child, h);
          kids.push_back(std::move(h));
        }
        break;
      case 5:
        if (!kids.empty()) (void)kids[rng() % kids.size()].await();
        break;
      case 7:
        try {
          this_fiber::yield();
        } catch (const Interrupted&) {
          // swallowed: sticky, the next interruptible yield point throws again
        }
        break;
      case 8:
        if (rng() % 8 == 0) {
          r->threw_failure = true;
          throw std::runtime_error("random failure");
        }
        break;
      default:
        this_fiber::yield();
        break;
    }
  }
}

struct Finalizer {
  Record* r;
  int k;
  bool suspend;
  Finalizer(Record* rec, int index, bool may_suspend) : r(rec), k(index), suspend(may_suspend) {}
  Finalizer(const Finalizer&) = delete;
  Finalizer& operator=(const Finalizer&) = delete;
  ~Finalizer() {
    Uninterruptible mask;  // finalizers run masked and may suspend
    if (suspend) this_fiber::yield();
    if (r->next_expected != k) ++r->lifo_violations;
    r->next_expected = k - 1;
    ++r->ran;
  }
};

// blocks() nests one finalizer per block on the real stack (RAII, LIFO).
void blocks(World& w, Record* r, std::mt19937_64& rng, int depth, int left,
            std::vector<Fiber<void>>& kids) {
  if (left == 0) return;
  const int k = r->installed++;
  r->next_expected = k;
  Finalizer fin(r, k, rng() % 3 == 0);
  run_ops(w, r, rng, depth, 1 + static_cast<int>(rng() % 4), kids);
  blocks(w, r, rng, depth, left - 1, kids);
}

void body(World& w, Record* r, std::uint64_t seed, int depth) {
  r->started = true;
  r->id = this_fiber::id();
  std::mt19937_64 rng(seed);
  std::vector<Fiber<void>> kids;
  blocks(w, r, rng, depth, 1 + static_cast<int>(rng() % 4), kids);
  r->completed = true;
}

void interrupter(World& w, std::uint64_t seed, int shots) {
  std::mt19937_64 rng(seed);
  for (int i = 0; i < shots; ++i) {
    for (unsigned y = rng() % 4; y > 0; --y) this_fiber::yield();
    Record* target = nullptr;
    Fiber<void> f = w.pick(rng, &target);
    if (!f.valid()) continue;
    target->targeted.fetch_add(1);
    f.interrupt_fork();
    w.races.fetch_add(1, std::memory_order_relaxed);
  }
}

std::uint64_t seed_from_env() {
  if (const char* s = std::getenv("WEFT_SEED")) return std::strtoull(s, nullptr, 10);
  return std::random_device{}();
}

// The default: 1200 scenarios per worker count take ~0.5 s in the dev build
// and ~4 s under ASan on 2 busy cores; TSan runs a fifth of them
// (race_rounds()), as 1200 took 46-95 s there. WEFT_STRESS_SCENARIOS sets the
// count in every build, and also test_replay's (100,000 in the dev build):
// 20,000 of these took 13 minutes under ASan on a busy machine.
int scenarios_from_env() {
  if (const char* s = std::getenv("WEFT_STRESS_SCENARIOS")) return std::atoi(s);
  return test::race_rounds(1200);
}

class InterruptStress : public RuntimeTest {};
WEFT_RUNTIME_TEST_SUITE(InterruptStress);

TEST_P(InterruptStress, test_interrupt_stress_random_trees) {
  const std::uint64_t seed = seed_from_env();
  const int scenarios = scenarios_from_env();
  std::printf("test_interrupt_stress: WEFT_SEED=%llu workers=%u scenarios=%d\n",
              static_cast<unsigned long long>(seed), workers(), scenarios);
  SCOPED_TRACE(testing::Message() << "reproduce with WEFT_SEED=" << seed);
  std::mt19937_64 master(seed);
  long total_races = 0, total_fibers = 0;
  for (int sc = 0; sc < scenarios; ++sc) {
    World w;
    const std::uint64_t scenario_seed = master();
    Exit<void> e = run([&] {
      std::mt19937_64 rng(scenario_seed);
      std::vector<Fiber<void>> roots, shooters;
      for (int i = 0; i < 4; ++i) {
        Record* r = w.add(this_fiber::id());
        const std::uint64_t s = rng();
        Fiber<void> h = fork([&w, r, s] { body(w, r, s, 0); });
        w.publish(r, h);
        roots.push_back(std::move(h));
      }
      for (int i = 0; i < 3; ++i) {
        const std::uint64_t s = rng();
        Fiber<void> sh = fork([&w, s] { interrupter(w, s, 25); });
        {
          std::lock_guard lk(w.mu);
          w.interrupters.push_back(sh.id());
        }
        shooters.push_back(std::move(sh));
      }
      for (auto& s : shooters) (void)s.await();
      for (auto& r : roots) (void)r.await();
    });
    ASSERT_TRUE(e.ok()) << "scenario " << sc << ": " << e.cause().pretty();
    total_races += w.races.load();
    for (Record& r : w.records) {
      ++total_fibers;
      ASSERT_TRUE(r.handle.valid());
      Exit<void> x = r.handle.await();  // all ended: no wait
      SCOPED_TRACE(testing::Message() << "scenario " << sc << " fiber " << r.id);
      if (!r.started) {
        EXPECT_EQ(r.ran, 0);
        EXPECT_TRUE(x.interrupted());
        continue;
      }
      EXPECT_EQ(r.ran, r.installed) << "every finalizer exactly once";
      EXPECT_EQ(r.lifo_violations, 0) << "finalizers in LIFO order";
      if (x.ok()) {
        EXPECT_TRUE(r.completed);
      } else if (x.failed()) {
        EXPECT_TRUE(r.threw_failure);
      } else {
        ASSERT_TRUE(x.interrupted());
        // Interrupted only by an interrupter that targeted it or by its parent.
        for (FiberId by : x.cause().interruptors()) {
          const bool shooter =
              std::find(w.interrupters.begin(), w.interrupters.end(), by) != w.interrupters.end();
          EXPECT_TRUE((shooter && r.targeted.load() > 0) || by == r.parent)
              << "unexpected interruptor " << by;
        }
      }
    }
    if (HasFailure()) break;
  }
  std::printf("test_interrupt_stress: %ld fibers, %ld interrupt/complete races\n", total_fibers,
              total_races);
}

}  // namespace
}  // namespace weft
