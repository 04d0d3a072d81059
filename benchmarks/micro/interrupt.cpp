// Micro-benchmarks of delivering an interrupt to a parked fiber, next to the
// C++ floor it is made of (docs/performance.md, "Interruption: frames of our
// own"):
//   - interrupt_parked: fork a fiber that installs a finalizer and parks on a
//     Deferred nobody completes, let it park, interrupt it and await its end
//     (interrupt_blocked's round, on one worker);
//   - throw_floor: the same shape in plain C++, no runtime: a throw from an
//     out-of-line function, through a frame with one cleanup (the finalizer),
//     to a catch in that frame. What the unwinder alone costs per interrupt.
// Interrupted starts in the frame the user called (Deferred's wait), and is
// caught in the fiber body's own frame, so the first number is the second
// plus the runtime's fork, park, wake and switches.
#include <benchmark/benchmark.h>

#include <weft/weft.hpp>

#include "in_fiber.hpp"

#include <stdexcept>

namespace weft {
namespace {

using bench::in_fiber;

void BM_interrupt_parked(benchmark::State& state) {
  in_fiber(state, [](benchmark::State& s) {
    Deferred<void> never;
    int finalized = 0;
    for (auto _ : s) {
      bool started = false;
      Fiber<void> f = fork([&] {
        OnExit finalizer{[&] { ++finalized; }};
        started = true;
        never.await();
      });
      while (!started) this_fiber::yield();
      benchmark::DoNotOptimize(f.interrupt().interrupted());
    }
    benchmark::DoNotOptimize(finalized);
  });
}
BENCHMARK(BM_interrupt_parked);

struct Finalizer {
  int& n;
  ~Finalizer() { ++n; }
};

[[gnu::noinline]] void throw_from_wait(int x) {
  if (x >= 0) throw std::runtime_error("interrupted");
}

[[gnu::noinline]] void body(int& finalized) {
  try {
    Finalizer f{finalized};
    throw_from_wait(finalized);
  } catch (const std::runtime_error&) {
    benchmark::ClobberMemory();
  }
}

void BM_throw_floor(benchmark::State& state) {
  int finalized = 0;
  for (auto _ : state) body(finalized);
  benchmark::DoNotOptimize(finalized);
}
BENCHMARK(BM_throw_floor);

}  // namespace
}  // namespace weft
