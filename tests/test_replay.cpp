// Deterministic replay (RuntimeOptions::deterministic) and the randomized
// program stress test built on it.
//
// ReplayStress runs WEFT_STRESS_SCENARIOS (default 100000; 5000 under ASan,
// 500 under TSan, see kReplayScenarios) random programs
// (tests/support/program.hpp: fork trees blocking on every primitive, masks,
// Scopes, races, timeouts, finalizers that suspend or throw, interrupters),
// each on a fresh deterministic runtime whose seed also generates the
// program. A failure prints the scenario's seed; rerun exactly that scenario:
//   WEFT_SEED=<seed> WEFT_STRESS_SCENARIOS=1 ctest -R test_replay
// ParallelStress runs the same programs on real worker threads (not
// replayable, but it puts the interleavings on real cores, for TSan).
#include "support/program.hpp"
#include "support/scale.hpp"
#include "support/weft_test.hpp"

#include <cstdio>
#include <cstdlib>
#include <random>
#include <set>
#include <vector>

namespace weft {
namespace {

// ReplayStress's default: 100,000 programs take ~75 s in the dev build and
// 5-15x longer under a sanitizer. ASan runs 5,000 (20,000 took 144 s on 2
// busy cores; the fuzz stage adds coverage-guided programs under ASan). TSan
// runs 500 (2,000 took 53 s): a deterministic runtime drives every worker
// from one thread, so TSan has little to check here; ParallelStress puts the
// programs on real threads.
constexpr std::uint64_t kReplayScenarios = test::scaled(100'000, 5'000, 500);

std::uint64_t env_or(const char* name, std::uint64_t fallback) {
  if (const char* s = std::getenv(name)) return std::strtoull(s, nullptr, 10);
  return fallback;
}

std::vector<std::uint8_t> program_bytes(std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::uint8_t> bytes(64 + rng() % 192);
  for (auto& b : bytes) b = static_cast<std::uint8_t>(rng());
  return bytes;
}

RuntimeOptions replay_options(std::uint64_t seed, unsigned workers) {
  RuntimeOptions o;
  o.workers = workers;
  o.seed = seed;
  o.deterministic = true;
  return o;
}

test::ProgramResult run_replay(std::uint64_t seed, unsigned workers,
                               const std::vector<std::uint8_t>& bytes) {
  Runtime rt(replay_options(seed, workers));
  return test::run_program(rt, bytes);
}

TEST(Replay, same_seed_replays_the_same_interleaving) {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    const auto bytes = program_bytes(seed);
    const auto a = run_replay(seed, 3, bytes);
    const auto b = run_replay(seed, 3, bytes);
    ASSERT_EQ(a.error, "") << "seed " << seed;
    ASSERT_EQ(b.error, "") << "seed " << seed;
    EXPECT_EQ(a.trace, b.trace) << "seed " << seed;
    EXPECT_EQ(a.fibers, b.fibers) << "seed " << seed;
    EXPECT_EQ(a.finalizers, b.finalizers) << "seed " << seed;
    EXPECT_EQ(a.items, b.items) << "seed " << seed;
  }
}

TEST(Replay, the_seed_chooses_the_interleaving) {
  // One program, scheduled from 16 seeds: the seed must matter.
  std::vector<std::uint8_t> bytes;
  std::uint64_t p = 0;
  for (; p < 1000; ++p) {  // a program with a few fibers that take steps
    bytes = program_bytes(p);
    if (run_replay(1, 2, bytes).fibers >= 6) break;
  }
  std::set<std::uint64_t> traces;
  for (std::uint64_t seed = 1; seed <= 16; ++seed) {
    const auto r = run_replay(seed, 2, bytes);
    ASSERT_EQ(r.error, "") << "seed " << seed;
    traces.insert(r.trace);
  }
  EXPECT_GE(traces.size(), 4u) << "program " << p;
}

TEST(Replay, fork_order_follows_the_seed) {
  auto order = [](std::uint64_t seed) {
    Runtime rt(replay_options(seed, 4));
    std::vector<int> log;  // written by fibers on the one driver thread
    (void)rt.block_on([&] {
      std::vector<Fiber<void>> kids;
      for (int i = 0; i < 8; ++i) {
        kids.push_back(fork([&log, i] {
          for (int step = 0; step < 3; ++step) {
            log.push_back(i * 10 + step);
            this_fiber::yield();
          }
        }));
      }
      for (auto& k : kids) (void)k.await();
    });
    return log;
  };
  EXPECT_EQ(order(7), order(7));
  EXPECT_EQ(order(8), order(8));
  std::set<std::vector<int>> distinct;
  for (std::uint64_t s = 1; s <= 8; ++s) distinct.insert(order(s));
  EXPECT_GE(distinct.size(), 4u);
}

TEST(Replay, sleeps_use_the_virtual_clock) {
  Runtime rt(replay_options(3, 2));
  const auto real_start = std::chrono::steady_clock::now();
  Exit<std::chrono::nanoseconds> slept = rt.block_on([] {
    const auto t0 = this_fiber::now();
    this_fiber::sleep_for(std::chrono::hours(1));  // jumps: every fiber is blocked
    return this_fiber::now() - t0;
  });
  ASSERT_TRUE(slept.ok());
  EXPECT_GE(slept.value(), std::chrono::hours(1));
  EXPECT_LT(slept.value(), std::chrono::hours(1) + std::chrono::seconds(1));
  EXPECT_LT(std::chrono::steady_clock::now() - real_start, std::chrono::minutes(5));
}

TEST(Replay, a_timeout_expires_in_virtual_time) {
  Runtime rt(replay_options(4, 2));
  auto r = rt.block_on([] {
    const auto t0 = this_fiber::now();
    auto v = timeout(std::chrono::milliseconds(10), [] {
      this_fiber::sleep_for(std::chrono::hours(1));
      return 1;
    });
    return std::pair{v.has_value(), this_fiber::now() - t0};
  });
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r.value().first);
  EXPECT_GE(r.value().second, std::chrono::milliseconds(10));
  EXPECT_LT(r.value().second, std::chrono::hours(1));
}

TEST(Replay, time_advances_while_fibers_compute) {
  // A fiber that only yields still sees time pass, so deadlines can fire
  // between steps of busy fibers, not only when all are blocked.
  Runtime rt(replay_options(5, 1));
  auto r = rt.block_on([] {
    auto busy = fork([] {
      for (;;) this_fiber::yield();
    });
    auto v = timeout(std::chrono::microseconds(500), [] {
      for (;;) this_fiber::yield();
    });
    busy.interrupt_fork();
    return v.has_value();
  });
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r.value());
}

TEST(ReplayStress, random_programs_on_deterministic_runtimes) {
  const std::uint64_t base = env_or("WEFT_SEED", std::random_device{}());
  const std::uint64_t scenarios = env_or("WEFT_STRESS_SCENARIOS", kReplayScenarios);
  std::printf("test_replay: WEFT_SEED=%llu scenarios=%llu\n", static_cast<unsigned long long>(base),
              static_cast<unsigned long long>(scenarios));
  long fibers = 0, finalizers = 0, interrupts = 0, items = 0;
  for (std::uint64_t i = 0; i < scenarios; ++i) {
    const std::uint64_t seed = base + i;
    const auto r = run_replay(seed, 1 + static_cast<unsigned>(seed % 4), program_bytes(seed));
    ASSERT_EQ(r.error, "") << "scenario " << i << "; reproduce with WEFT_SEED=" << seed
                           << " WEFT_STRESS_SCENARIOS=1 ctest -R test_replay";
    fibers += r.fibers;
    finalizers += r.finalizers;
    interrupts += r.interrupts;
    items += r.items;
  }
  std::printf("test_replay: %ld fibers, %ld finalizers, %ld interrupts, %ld channel items\n",
              fibers, finalizers, interrupts, items);
  EXPECT_GT(fibers, 0);
  EXPECT_GT(finalizers, 0);
  EXPECT_GT(interrupts, 0);
}

class ParallelStress : public test::RuntimeTest {};
WEFT_RUNTIME_TEST_SUITE(ParallelStress);

TEST_P(ParallelStress, random_programs_on_worker_threads) {
  const std::uint64_t base = env_or("WEFT_SEED", std::random_device{}());
  const std::uint64_t scenarios = env_or("WEFT_PARALLEL_SCENARIOS", 1000);
  std::printf("test_replay (parallel): WEFT_SEED=%llu workers=%u scenarios=%llu\n",
              static_cast<unsigned long long>(base), workers(),
              static_cast<unsigned long long>(scenarios));
  for (std::uint64_t i = 0; i < scenarios; ++i) {
    const auto r = test::run_program(rt(), program_bytes(base + i));
    ASSERT_EQ(r.error, "") << "program seed " << base + i;
  }
}

}  // namespace
}  // namespace weft
