// Micro-benchmarks of ConditionVariable, on a one-worker runtime from inside
// a fiber:
//   - notify_one() with nobody waiting (the lock-free early return);
//   - a ping-pong: two fibers hand a turn back and forth through one
//     weft::Mutex and one ConditionVariable (per iteration: two waits, two
//     notifications, two re-locks and the switches between them); compare
//     with micro_wait_queue's BM_park_wake_round_trip (Semaphore(0)).
#include <benchmark/benchmark.h>

#include <weft/weft.hpp>

#include "in_fiber.hpp"

#include <mutex>

namespace weft {
namespace {

using bench::in_fiber;

void BM_cv_notify_one_no_waiters(benchmark::State& state) {
  in_fiber(state, [](benchmark::State& s) {
    ConditionVariable cv;
    for (auto _ : s) {
      cv.notify_one();
      benchmark::ClobberMemory();
    }
  });
}
BENCHMARK(BM_cv_notify_one_no_waiters);

void BM_cv_ping_pong(benchmark::State& state) {
  in_fiber(state, [](benchmark::State& s) {
    Mutex m;
    ConditionVariable cv;
    bool ping_turn = true;  // guarded by m
    Fiber<void> partner = fork([&] {
      std::unique_lock lk(m);
      for (;;) {
        cv.wait(lk, [&] { return !ping_turn; });
        ping_turn = true;
        cv.notify_one();
      }
    });
    std::unique_lock lk(m);
    for (auto _ : s) {
      ping_turn = false;
      cv.notify_one();
      cv.wait(lk, [&] { return ping_turn; });
    }
    lk.unlock();
    (void)partner.interrupt();
  });
}
BENCHMARK(BM_cv_ping_pong);

}  // namespace
}  // namespace weft
