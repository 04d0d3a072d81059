// Micro-benchmarks of what liveness (DESIGN 3.14) costs the hot paths, each
// run with the monitor on (the default 1 ms interval) and off (0), on one
// worker and on two (the second idle: what waking it, or not, costs; see
// Worker::push_local for the LIFO-slot wake measured and left out):
//   - fork + join of a trivial child (spawn_join's step);
//   - yield with a second fiber yielding too (the yield queue, a Chase-Lev
//     deque that idle workers may steal from).
// Arguments: {workers, monitor interval in us}. (The hand-off is
// micro_wait_queue's BM_park_wake_round_trip and the yield_pingpong kernel.)
#include <benchmark/benchmark.h>

#include <weft/weft.hpp>

#include "in_fiber.hpp"

#include <atomic>

namespace weft {
namespace {

// in_fiber() on a runtime with the benchmark's {workers, monitor_us}.
template <class Body>
void in_fiber(benchmark::State& state, Body body) {
  RuntimeOptions o;
  o.workers = static_cast<unsigned>(state.range(0));
  o.monitor_interval = std::chrono::microseconds(state.range(1));
  bench::in_fiber(state, o, body);
}

void BM_fork_join(benchmark::State& state) { in_fiber(state, bench::fork_join); }

void BM_yield_two_fibers(benchmark::State& state) { in_fiber(state, bench::yield_pingpong); }

void Args(benchmark::internal::Benchmark* b) {
  for (int workers : {1, 2})
    for (int monitor_us : {1000, 0}) b->Args({workers, monitor_us});
  b->ArgNames({"workers", "monitor_us"});
}

BENCHMARK(BM_fork_join)->Apply(Args);
BENCHMARK(BM_yield_two_fibers)->Apply(Args);

}  // namespace
}  // namespace weft
