// in_fiber(): run a Google Benchmark body inside one root fiber of a fresh
// Runtime, shared by the micro-benchmarks that measure from a fiber.
#pragma once

#include <benchmark/benchmark.h>

#include <weft/weft.hpp>

#include <atomic>

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

// fork_join() is a body: fork and join a trivial child per iteration.
inline void fork_join(benchmark::State& s) {
  int i = 0;
  for (auto _ : s) benchmark::DoNotOptimize(fork([&i] { return ++i; }).join());
}

// yield_pingpong() is a body: yield to a partner fiber that yields back.
inline void yield_pingpong(benchmark::State& s) {
  std::atomic<bool> stop{false};
  Fiber<void> partner = fork([&] {
    while (!stop.load(std::memory_order_relaxed)) this_fiber::yield();
  });
  for (auto _ : s) this_fiber::yield();
  stop = true;
  partner.join();
}

}  // namespace weft::bench
