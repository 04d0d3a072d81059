// timeout_storm: 100,000 fibers at once, each puts a 50 ms weft::timeout on a
// task that sleeps forever; join them all. Checks that every timeout fired
// (returned std::nullopt).
// Prints: BENCH timeout_storm <total ms> ms (ideal ~50) and
//         BENCH timeout_storm_peak_rss <MB> MB (process peak, all 6 runs).
#include "common.hpp"

#include <weft/timeout.hpp>

int main(int argc, char** argv) {
  using namespace weft::bench;
  using namespace std::chrono_literals;
  const Args a = parse_args(argc, argv, "timeout_storm");
  const std::uint64_t n = a.quick ? 5'000 : 100'000;
  weft::Runtime rt(runtime_options(a));
  Watchdog dog(a, &rt);
  double ns = 0;
  run_root(a, rt, [&] {
    std::atomic<std::uint64_t> timed_out{0};
    ns = median_ns([&] {
      timed_out.store(0, std::memory_order_relaxed);
      std::vector<weft::Fiber<void>> fibers;
      fibers.reserve(n);
      for (std::uint64_t i = 0; i < n; ++i) {
        fibers.push_back(weft::fork([&] {
          auto r = weft::timeout(50ms, [] {
            weft::this_fiber::sleep_for(kForever);
            return 0;
          });
          if (!r) timed_out.fetch_add(1, std::memory_order_relaxed);
        }));
      }
      for (auto& f : fibers) f.join();
      WEFT_BENCH_CHECK(a, timed_out.load() == n,
                       "timeouts fired " + std::to_string(timed_out.load()));
    });
  });
  print("timeout_storm", ns / 1e6, "ms");
  print("timeout_storm_peak_rss", static_cast<double>(peak_rss_bytes()) / 1e6, "MB");
  return 0;
}
