// Micro-benchmarks of FiberLocal (include/weft/fiber_local.hpp), on one
// worker from a root fiber:
//   - get() of a local this fiber never set (no table: a null check), and of
//     one set among four (a lookup in the fiber's table);
//   - set() on a table nobody shares (the value box is the only allocation);
//   - a Scoped open and close;
//   - fork + join of a trivial child with no locals set (the table is a null
//     pointer copy) and with four set (one shared-table increment and release);
//     compare with micro_liveness's BM_fork_join.
#include <benchmark/benchmark.h>

#include <weft/weft.hpp>

#include "in_fiber.hpp"

namespace weft {
namespace {

void in_fiber(benchmark::State& state, auto body) { bench::in_fiber(state, {.workers = 1}, body); }

FiberLocal<int> g_a(0), g_b(0), g_c(0), g_d(0);

void set_four() {
  g_a.set(1);
  g_b.set(2);
  g_c.set(3);
  g_d.set(4);
}

void BM_get_never_set(benchmark::State& state) {
  in_fiber(state, [](benchmark::State& s) {
    for (auto _ : s) benchmark::DoNotOptimize(g_a.get());
  });
}

void BM_get_one_of_four_set(benchmark::State& state) {
  in_fiber(state, [](benchmark::State& s) {
    set_four();
    for (auto _ : s) benchmark::DoNotOptimize(g_c.get());
  });
}

void BM_set_unshared(benchmark::State& state) {
  in_fiber(state, [](benchmark::State& s) {
    int i = 0;
    for (auto _ : s) g_a.set(++i);
  });
}

void BM_scoped(benchmark::State& state) {
  in_fiber(state, [](benchmark::State& s) {
    set_four();
    int i = 0;
    for (auto _ : s) {
      FiberLocal<int>::Scoped scoped(g_b, ++i);
      benchmark::DoNotOptimize(g_b.get());
    }
  });
}

void BM_fork_join_no_locals(benchmark::State& state) {
  in_fiber(state, [](benchmark::State& s) {
    for (auto _ : s) benchmark::DoNotOptimize(fork([] { return 1; }).join());
  });
}

void BM_fork_join_four_locals(benchmark::State& state) {
  in_fiber(state, [](benchmark::State& s) {
    set_four();
    for (auto _ : s) benchmark::DoNotOptimize(fork([] { return g_d.get(); }).join());
  });
}

BENCHMARK(BM_get_never_set);
BENCHMARK(BM_get_one_of_four_set);
BENCHMARK(BM_set_unshared);
BENCHMARK(BM_scoped);
BENCHMARK(BM_fork_join_no_locals);
BENCHMARK(BM_fork_join_four_locals);

}  // namespace
}  // namespace weft
