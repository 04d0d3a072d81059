// Micro-benchmarks of what a write to one shared cache line costs when every
// worker makes it: the measurement next to round 7's two fixes
// (docs/performance.md, "Round 7: the lines every fork wrote").
//
//  - BM_IdFromSharedCounter vs BM_IdFromWeft: a fiber id from one fetch_add
//    on a process-wide counter (weft before round 7) against
//    detail::new_fiber_id() (per-thread blocks of ids).
//  - BM_PublishByRmw vs BM_PublishByFence: the store-load barrier after a
//    deque push as a seq_cst fetch_add(0) on the shared sleeper count (before)
//    against the fence of src/scheduler/fence.hpp and a load (after).
// What one transfer between the cores costs here: machine_core_to_core
// (benchmarks/machine/), half its round trip.
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

// work() is `n` dependent multiplies: private work between two shared writes.
inline void work(std::int64_t n) {
  std::uint64_t x = 1;
  for (std::int64_t i = 0; i < n; ++i) {
    x = x * 6364136223846793005u + 1442695040888963407u;
    benchmark::DoNotOptimize(x);
  }
}

// shared_op() times `op` after state.range(0) units of private work.
template <class Op>
void shared_op(benchmark::State& state, Op op) {
  for (auto _ : state) {
    work(state.range(0));
    op();
  }
}

void BM_IdFromSharedCounter(benchmark::State& state) {
  shared_op(state,
            [] { benchmark::DoNotOptimize(g_counter.fetch_add(1, std::memory_order_relaxed)); });
}
BENCHMARK(BM_IdFromSharedCounter)->Arg(0)->Arg(100)->Threads(1)->Threads(2)->UseRealTime();

void BM_IdFromWeft(benchmark::State& state) {
  shared_op(state, [] { benchmark::DoNotOptimize(weft::detail::new_fiber_id()); });
}
BENCHMARK(BM_IdFromWeft)->Arg(0)->Arg(100)->Threads(1)->Threads(2)->UseRealTime();

void BM_PublishByRmw(benchmark::State& state) {
  shared_op(state,
            [] { benchmark::DoNotOptimize(g_sleepers.fetch_add(0, std::memory_order_seq_cst)); });
}
BENCHMARK(BM_PublishByRmw)->Arg(0)->Arg(100)->Threads(1)->Threads(2)->UseRealTime();

void BM_PublishByFence(benchmark::State& state) {
  shared_op(state, [] {
    weft::detail::fence_seq_cst();
    benchmark::DoNotOptimize(g_sleepers.load(std::memory_order_seq_cst));
  });
}
BENCHMARK(BM_PublishByFence)->Arg(0)->Arg(100)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
