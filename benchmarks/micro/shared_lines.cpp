// Micro-benchmarks of what a write to one shared cache line costs when every
// worker makes it: the measurement next to round 7's two fixes
// (docs/performance.md, "Round 7: the lines every fork wrote").
//
//  - BM_CoreToCoreRoundTrip: two threads hand a line back and forth. Google
//    Benchmark divides the time by both threads' iterations, so the figure
//    is half a round trip: one transfer between the two cores (the
//    machine's floor for anything shared; machine_core_to_core prints the
//    whole round trip).
//  - BM_IdFromSharedCounter vs BM_IdFromWeft: a fiber id from one fetch_add
//    on a process-wide counter (weft before round 7) against
//    detail::new_fiber_id() (per-thread blocks of ids).
//  - BM_PublishByRmw vs BM_PublishByFence: the store-load barrier after a
//    deque push as a seq_cst fetch_add(0) on the shared sleeper count (before)
//    against the fence of src/scheduler/fence.hpp and a load (after).
// Threads(2) is the case of the kernels: both workers fork. The argument is
// the private work between two shared operations (iterations of a dependent
// multiply, ~1 ns each): with none, a core keeps the line for a run of
// operations and the cost hides; with some, as between two forks, every
// operation finds the line on the other core.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>

#include "scheduler/fence.hpp"
#include "weft/detail/fiber_core.hpp"

namespace {

alignas(64) std::atomic<std::uint64_t> g_counter{1};
alignas(64) std::atomic<int> g_sleepers{0};
alignas(64) std::atomic<std::uint64_t> g_ball{0};

// work() is `n` dependent multiplies: private work between two shared writes.
inline void work(std::int64_t n) {
  std::uint64_t x = 1;
  for (std::int64_t i = 0; i < n; ++i) {
    x = x * 6364136223846793005u + 1442695040888963407u;
    benchmark::DoNotOptimize(x);
  }
}

void BM_CoreToCoreRoundTrip(benchmark::State& state) {
  // Thread 0 serves odd values, thread 1 returns them even: one round trip
  // per iteration. Fixed iterations, so both threads run the same count.
  const bool server = state.thread_index() == 0;
  std::uint64_t i = 0;
  if (server) g_ball.store(0, std::memory_order_relaxed);
  for (auto _ : state) {
    const std::uint64_t want = server ? 2 * i : 2 * i + 1;
    while (g_ball.load(std::memory_order_acquire) != want) {
    }
    g_ball.store(want + 1, std::memory_order_release);
    ++i;
  }
  if (server) {
    // The last hand-back.
    while (g_ball.load(std::memory_order_acquire) != 2 * i) {
    }
  }
}
BENCHMARK(BM_CoreToCoreRoundTrip)->Threads(2)->Iterations(200000)->UseRealTime();

void BM_IdFromSharedCounter(benchmark::State& state) {
  for (auto _ : state) {
    work(state.range(0));
    benchmark::DoNotOptimize(g_counter.fetch_add(1, std::memory_order_relaxed));
  }
}
BENCHMARK(BM_IdFromSharedCounter)->Arg(0)->Arg(100)->Threads(1)->Threads(2)->UseRealTime();

void BM_IdFromWeft(benchmark::State& state) {
  for (auto _ : state) {
    work(state.range(0));
    benchmark::DoNotOptimize(weft::detail::new_fiber_id());
  }
}
BENCHMARK(BM_IdFromWeft)->Arg(0)->Arg(100)->Threads(1)->Threads(2)->UseRealTime();

void BM_PublishByRmw(benchmark::State& state) {
  for (auto _ : state) {
    work(state.range(0));
    benchmark::DoNotOptimize(g_sleepers.fetch_add(0, std::memory_order_seq_cst));
  }
}
BENCHMARK(BM_PublishByRmw)->Arg(0)->Arg(100)->Threads(1)->Threads(2)->UseRealTime();

void BM_PublishByFence(benchmark::State& state) {
  for (auto _ : state) {
    work(state.range(0));
    weft::detail::fence_seq_cst();
    benchmark::DoNotOptimize(g_sleepers.load(std::memory_order_seq_cst));
  }
}
BENCHMARK(BM_PublishByFence)->Arg(0)->Arg(100)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
