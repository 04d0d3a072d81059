// Micro-benchmarks of what the trace hooks cost the hot paths (issue 14):
// fork + join of a trivial child and two fibers yielding to each other, on
// one worker, with tracing off (the default: one predictable branch per
// hook) and on (RuntimeOptions::trace_path = /dev/null: the events are
// formatted and written, the disk is left out). Build with
// -DCMAKE_CXX_FLAGS=-DWEFT_TRACE_HOOKS=0 for the runtime without the hooks;
// docs/debugging.md has the figures. Argument: trace (0 off, 1 on).
#include <benchmark/benchmark.h>

#include <weft/weft.hpp>

#include "in_fiber.hpp"

#include <atomic>

namespace weft {
namespace {

template <class Body>
void in_fiber(benchmark::State& state, Body body) {
  RuntimeOptions o;
  o.workers = 1;
  if (state.range(0) != 0) o.trace_path = "/dev/null";
  bench::in_fiber(state, o, body);
}

void BM_trace_fork_join(benchmark::State& state) { in_fiber(state, bench::fork_join); }

void BM_trace_yield_pingpong(benchmark::State& state) { in_fiber(state, bench::yield_pingpong); }

BENCHMARK(BM_trace_fork_join)->Arg(0)->Arg(1)->ArgName("trace");
BENCHMARK(BM_trace_yield_pingpong)->Arg(0)->Arg(1)->ArgName("trace");

}  // namespace
}  // namespace weft
