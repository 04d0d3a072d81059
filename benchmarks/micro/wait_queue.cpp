// Micro-benchmarks of the wait path and of the interrupt check, measured on
// a one-worker runtime from inside a fiber:
//   - park/wake round trip: two fibers hand a turn back and forth through
//     Semaphore(0) (the thinnest primitive over detail::WaitQueue): per
//     iteration, two parks, two wakes and the switches between them;
//   - a claim on an empty SyncQueue (the lock and the claim loop);
//   - this_fiber::check_interrupt() with nothing pending (a load and a branch);
//   - this_fiber::yield() alone, the reference for "one trip through the
//     scheduler" (a lone yielder finds no other fiber: the worker loop);
//   - two fibers yielding to each other: each yield switches directly to the
//     other (docs/internals.md, "Direct switch"), one switch per yield.
#include <benchmark/benchmark.h>

#include <weft/weft.hpp>

#include "in_fiber.hpp"

namespace weft {
namespace {

using bench::in_fiber;

void BM_park_wake_round_trip(benchmark::State& state) {
  in_fiber(state, [](benchmark::State& s) {
    Semaphore ping(0), pong(0);
    Fiber<void> partner = fork([&] {
      for (;;) {
        ping.acquire();
        pong.release();
      }
    });
    for (auto _ : s) {
      ping.release();
      pong.acquire();
    }
    (void)partner.interrupt();
  });
}
BENCHMARK(BM_park_wake_round_trip);

void BM_claim_empty_queue(benchmark::State& state) {
  in_fiber(state, [](benchmark::State& s) {
    detail::SyncQueue q;
    for (auto _ : s) {
      std::unique_lock lk(q.lock());
      benchmark::DoNotOptimize(q.claim());
    }
  });
}
BENCHMARK(BM_claim_empty_queue);

void BM_check_interrupt_nothing_pending(benchmark::State& state) {
  in_fiber(state, [](benchmark::State& s) {
    for (auto _ : s) {
      this_fiber::check_interrupt();
      benchmark::ClobberMemory();
    }
  });
}
BENCHMARK(BM_check_interrupt_nothing_pending);

void BM_yield_alone(benchmark::State& state) {
  in_fiber(state, [](benchmark::State& s) {
    for (auto _ : s) this_fiber::yield();
  });
}
BENCHMARK(BM_yield_alone);

void BM_yield_two_fibers(benchmark::State& state) { in_fiber(state, bench::yield_pingpong); }
BENCHMARK(BM_yield_two_fibers);

}  // namespace
}  // namespace weft
