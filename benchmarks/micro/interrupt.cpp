// Micro-benchmarks of delivering an interrupt to a parked fiber, next to the
// C++ floor it is made of (docs/performance.md, "Interruption: frames of our
// own"):
//   - interrupt_parked: fork a fiber that installs a finalizer and parks on a
//     Deferred nobody completes, let it park, interrupt it and await its end
//     (interrupt_blocked's round, on one worker);
//   - race_parked_loser: a race whose contestant 0 parks on the racer's
//     stack and loses to a sibling (the race kernel's round, on one worker);
//   - throw_floor: the same shape in plain C++, no runtime: a throw from an
//     out-of-line function, through a frame with one cleanup (the finalizer),
//     to a catch in that frame. What the unwinder alone costs per interrupt.
// Interrupted starts in the frame the user called (Deferred's wait), and is
// caught in the fiber body's own frame, so the first number is the second
// plus the runtime's fork, park, wake and switches.
#include <benchmark/benchmark.h>

#include <weft/weft.hpp>

#include "in_fiber.hpp"

#include <unwind.h>

#include <cstdint>
#include <cstring>
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

// race_parked_loser: race(loser, winner) where contestant 0, on the racer's
// own stack, installs a finalizer and parks, and the forked winner returns
// at once: its win fires the race scope, which ends the loser by a
// ScopeInterrupted (the race kernel's round, on one worker). With
// WEFT_INTERRUPT_UNWIND=1 that fire is delivered by phase 2 alone.
void BM_race_parked_loser(benchmark::State& state) {
  in_fiber(state, [](benchmark::State& s) {
    Deferred<void> never;
    int finalized = 0;
    for (auto _ : s) {
      bool started = false;
      const int v = race(
          [&] {
            OnExit finalizer{[&] { ++finalized; }};
            started = true;
            never.await();
            return 0;
          },
          [&] {
            while (!started) this_fiber::yield();  // the loser ran (DESIGN 3.2)
            return 1;
          });
      benchmark::DoNotOptimize(v);
    }
    benchmark::DoNotOptimize(finalized);
  });
}
BENCHMARK(BM_race_parked_loser);

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

_Unwind_Reason_Code continue_unwinding(int, _Unwind_Action, _Unwind_Exception_Class,
                                       _Unwind_Exception*, _Unwind_Context*, void*) {
  return _URC_NO_REASON;
}

void no_cleanup(_Unwind_Reason_Code, _Unwind_Exception*) {}

[[gnu::noinline]] void force_unwind_from_wait(int x, _Unwind_Exception& e) {
  if (x < 0) return;
  std::memset(&e, 0, sizeof e);
  e.exception_class = 0x5745'4654'4d49'4352;  // "WEFTMICR": foreign to C++
  e.exception_cleanup = no_cleanup;
  _Unwind_ForcedUnwind(&e, continue_unwinding, nullptr);
}

[[gnu::noinline]] void forced_body(int& finalized, _Unwind_Exception& e) {
  try {
    Finalizer f{finalized};
    force_unwind_from_wait(finalized, e);
  } catch (...) {  // a foreign exception: caught here, cleaned up by end_catch
    benchmark::ClobberMemory();
  }
}

void BM_forced_unwind_floor(benchmark::State& state) {
  int finalized = 0;
  _Unwind_Exception e;
  for (auto _ : state) forced_body(finalized, e);
  benchmark::DoNotOptimize(finalized);
}
BENCHMARK(BM_forced_unwind_floor);

struct Walk {
  std::uintptr_t root_cfa;
  int frames;
};

_Unwind_Reason_Code count_frame(_Unwind_Context* c, void* arg) {
  Walk& w = *static_cast<Walk*>(arg);
  ++w.frames;
  return _Unwind_GetCFA(c) > w.root_cfa ? _URC_END_OF_STACK : _URC_NO_REASON;
}

[[gnu::noinline]] int walk_from_wait(Walk& w) {
  _Unwind_Backtrace(count_frame, &w);
  return w.frames;
}

[[gnu::noinline]] int walk_body() {
  Walk w{reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0)), 0};
  return walk_from_wait(w);
}

void BM_backtrace_walk(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(walk_body());
}
BENCHMARK(BM_backtrace_walk);

}  // namespace
}  // namespace weft
