// in_fiber(): run a Google Benchmark body inside one root fiber of a fresh
// Runtime, shared by the micro-benchmarks that measure from a fiber.
#pragma once

#include <benchmark/benchmark.h>

#include <weft/weft.hpp>

namespace weft::bench {

// in_fiber() runs body(state) as a root fiber on a Runtime with `options`;
// a failing fiber marks the benchmark failed. Items processed = iterations.
template <class Body>
void in_fiber(benchmark::State& state, const RuntimeOptions& options, Body body) {
  Runtime rt(options);
  Exit<void> e = rt.block_on([&] { body(state); });
  if (!e.ok()) state.SkipWithError("the benchmark fiber failed");
  state.SetItemsProcessed(state.iterations());
}

// in_fiber() without options runs body(state) on a one-worker Runtime.
template <class Body>
void in_fiber(benchmark::State& state, Body body) {
  RuntimeOptions o;
  o.workers = 1;
  in_fiber(state, o, body);
}

}  // namespace weft::bench
