// core_to_core: the round trip of one cache line between two CPUs (default 0
// and 1), each thread pinned to one: thread A writes an odd value and waits
// for B's even answer. Prints "BENCH core_to_core_round_trip <ns> ns", the
// median of 5 runs of 200,000 round trips.
//
// Why benchmarks/compare prints it: on a VM the same "2 CPUs" can be two
// hyperthreads of one core or two cores on different dies, and every kernel
// whose workers share data moves with that distance (docs/performance.md,
// "Round 7": 470 ns here on 2026-12-07, when Tokio's skynet ran 2.7x
// slower than on the day of run 4 and faster on one CPU than on two).
// Usage: machine_core_to_core [cpu_a cpu_b]
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

alignas(64) std::atomic<std::uint64_t> g_ball{0};

bool pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
}

double round_trip_ns(int cpu_a, int cpu_b, std::uint64_t n) {
  g_ball.store(0, std::memory_order_relaxed);
  std::thread b([&] {
    pin(cpu_b);
    for (std::uint64_t i = 0; i < n; ++i) {
      while (g_ball.load(std::memory_order_acquire) != 2 * i + 1) {
      }
      g_ball.store(2 * i + 2, std::memory_order_release);
    }
  });
  pin(cpu_a);
  const auto t0 = std::chrono::steady_clock::now();
  for (std::uint64_t i = 0; i < n; ++i) {
    g_ball.store(2 * i + 1, std::memory_order_release);
    while (g_ball.load(std::memory_order_acquire) != 2 * i + 2) {
    }
  }
  const auto t1 = std::chrono::steady_clock::now();
  b.join();
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(n);
}

}  // namespace

int main(int argc, char** argv) {
  const int cpu_a = argc > 2 ? std::atoi(argv[1]) : 0;
  const int cpu_b = argc > 2 ? std::atoi(argv[2]) : 1;
  if (std::thread::hardware_concurrency() < 2) {
    std::fprintf(stderr, "core_to_core: needs two CPUs\n");
    return 1;
  }
  std::vector<double> runs;
  for (int r = 0; r < 5; ++r) runs.push_back(round_trip_ns(cpu_a, cpu_b, 200'000));
  std::sort(runs.begin(), runs.end());
  std::printf("BENCH core_to_core_round_trip %.1f ns\n", runs[runs.size() / 2]);
  return 0;
}
