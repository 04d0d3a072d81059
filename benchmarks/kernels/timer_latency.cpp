// timer_latency (weft only, no peer version): how late a timer fires while
// every worker is busy. One fiber sleeps 1 ms in a loop (sleep_for(1ms),
// 2,000 times; 200 with --quick) and records each overshoot: elapsed - 1 ms.
// Meanwhile one busy fiber per worker computes without ever blocking: a CPU
// loop that calls this_fiber::check_interrupt() every iteration (~0.5 us of
// work), as CPU-bound code is told to.
//
// A cooperative scheduler that only runs timers when a worker switches
// fibers starves the sleeper for as long as the busy loops run, so the busy
// loops stop on their own: when the sleeper has done its last sleep (a stop
// flag), or at a wall-clock limit (10 s; 1 s with --quick) so that the kernel
// ends even when the sleeper never runs. The statistics cover the sleeps
// that began while the busy loops ran; sleeps after the limit are counted
// but not measured.
//
// Checks (loosely; no latency bound): every sleep completed and none
// returned early (elapsed >= 1 ms).
// Prints: BENCH timer_latency_median <us> us   (overshoot, sleeps under load)
//         BENCH timer_latency_p99 <us> us
//         BENCH timer_latency_max <us> us
//         BENCH timer_latency_sleeps <n> sleeps           (completed)
//         BENCH timer_latency_loaded_sleeps <n> sleeps    (begun under load)
//         BENCH timer_latency_wall_limit_hit yes|no yes/no
#include "common.hpp"

#include <cmath>

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kSleep = 1ms;

// Sample is one sleep: its overshoot, and whether the busy loops still ran
// when it began.
struct Sample {
  double overshoot_us = 0;
  bool loaded = false;
};

// Load is the busy fibers' shared state.
struct Load {
  std::atomic<bool> stop{false};       // set by the sleeper or at the wall-clock limit
  std::atomic<bool> limit_hit{false};  // a busy loop reached the wall-clock limit
  std::atomic<std::uint64_t> sink{0};  // keeps the computation observable
  Clock::time_point limit;
};

// busy() computes until load.stop or the wall-clock limit, with a
// check_interrupt() (and nothing else a scheduler could switch at) per
// iteration. Relaxed loads: the flag is a hint, the join orders the rest.
void busy(Load& load) {
  std::uint64_t x = 0x9e3779b97f4a7c15ULL;
  while (!load.stop.load(std::memory_order_relaxed)) {
    for (int k = 0; k < 256; ++k) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    weft::this_fiber::check_interrupt();
    if (Clock::now() >= load.limit) {
      load.limit_hit.store(true, std::memory_order_relaxed);
      load.stop.store(true, std::memory_order_relaxed);
    }
  }
  load.sink.fetch_add(x, std::memory_order_relaxed);
}

// percentile() is the nearest-rank p-th percentile of sorted values.
double percentile(const std::vector<double>& sorted, double p) {
  const auto rank =
      static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  using namespace weft::bench;
  const Args a = parse_args(argc, argv, "timer_latency");
  const std::size_t sleeps = a.quick ? 200 : 2'000;
  const auto wall_limit = a.quick ? 1s : 10s;
  weft::Runtime rt(runtime_options(a));
  Watchdog dog(a, &rt);
  std::vector<Sample> samples;
  samples.reserve(sleeps);
  Load load;
  run_root(a, rt, [&] {
    load.limit = Clock::now() + wall_limit;
    std::vector<weft::Fiber<void>> busy_fibers;
    for (unsigned i = 0; i < a.workers; ++i)
      busy_fibers.push_back(weft::fork([&load] { busy(load); }));
    // This (root) fiber is the sleeper; its first sleep lets the busy fibers start.
    for (std::size_t i = 0; i < sleeps; ++i) {
      const bool loaded = !load.stop.load(std::memory_order_relaxed);
      const auto t0 = Clock::now();
      weft::this_fiber::sleep_for(kSleep);
      const auto elapsed = Clock::now() - t0;
      samples.push_back(
          {std::chrono::duration<double, std::micro>(elapsed - kSleep).count(), loaded});
    }
    load.stop.store(true, std::memory_order_relaxed);
    for (auto& f : busy_fibers) f.join();
  });

  WEFT_BENCH_CHECK(
      a, samples.size() == sleeps,
      "sleeps completed " + std::to_string(samples.size()) + " of " + std::to_string(sleeps));
  std::vector<double> loaded;
  for (const Sample& s : samples) {
    WEFT_BENCH_CHECK(a, s.overshoot_us >= 0,
                     "a sleep_for(1ms) returned " + std::to_string(-s.overshoot_us) + " us early");
    if (s.loaded) loaded.push_back(s.overshoot_us);
  }
  WEFT_BENCH_CHECK(a, !loaded.empty(), "no sleep began while the busy fibers ran");
  std::sort(loaded.begin(), loaded.end());
  const bool limit_hit = load.limit_hit.load();
  print("timer_latency_median", percentile(loaded, 50), "us");
  print("timer_latency_p99", percentile(loaded, 99), "us");
  print("timer_latency_max", loaded.back(), "us");
  print("timer_latency_sleeps", static_cast<double>(samples.size()), "sleeps");
  print("timer_latency_loaded_sleeps", static_cast<double>(loaded.size()), "sleeps");
  print_word("timer_latency_wall_limit_hit", limit_hit ? "yes" : "no", "yes/no");
  if (limit_hit) {
    std::fprintf(stderr,
                 "timer_latency: the busy fibers ran into the %lld s wall-clock limit before the "
                 "sleeper finished: %zu of %zu sleeps began under load\n",
                 static_cast<long long>(wall_limit.count()), loaded.size(), samples.size());
  }
  return 0;
}
