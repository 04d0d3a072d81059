// million: 1,000,000 fibers parked at once (on a never-completed
// weft::Deferred<void>), with the default stack size, on a stock kernel
// (vm.max_map_count 65530); then all are interrupted (interrupt_all: signal
// all, then await all). Checks that every fiber ended interrupted.
// Prints: BENCH million_completes yes|no yes/no
//         BENCH million_rss_per_fiber <bytes> bytes/task   (statm delta / n)
//         BENCH million_interrupt_all <ms> ms
//         BENCH million_peak_rss <MB> MB
#include "common.hpp"

#include <weft/deferred.hpp>

#include <new>
#include <stdexcept>

int main(int argc, char** argv) {
  using namespace weft::bench;
  using namespace std::chrono_literals;
  const Args a = parse_args(argc, argv, "million");
  const std::size_t n = a.quick ? 20'000 : 1'000'000;
  double per_fiber = 0, interrupt_ns = 0;
  std::string error;
  {
    weft::Runtime rt(runtime_options(a));
    Watchdog dog(a, &rt);
    auto exit = rt.block_on([&] {
      weft::Deferred<void> never;
      std::atomic<std::size_t> started{0};
      std::vector<weft::Fiber<void>> fibers(n);
      const long before = rss_bytes();
      try {
        for (std::size_t i = 0; i < n; ++i) {
          fibers[i] = weft::fork([&] {
            started.fetch_add(1, std::memory_order_relaxed);
            never.await();
          });
        }
      } catch (const std::exception& e) {
        error = std::string("fork failed after ") + std::to_string(started.load()) +
                " fibers: " + e.what();
      }
      while (error.empty() && started.load(std::memory_order_relaxed) < n)
        weft::this_fiber::yield();
      weft::this_fiber::sleep_for(20ms);
      per_fiber = static_cast<double>(rss_bytes() - before) / static_cast<double>(n);
      std::vector<weft::Fiber<void>> live;
      for (auto& f : fibers)
        if (f.valid()) live.push_back(f);
      interrupt_ns = elapsed_ns([&] { weft::interrupt_all(std::span(live)); });
      std::size_t not_interrupted = 0;
      for (auto& f : live) not_interrupted += f.poll()->interrupted() ? 0 : 1;
      if (error.empty() && not_interrupted != 0)
        error = std::to_string(not_interrupted) + " fibers did not end interrupted";
    });
    if (!exit.ok() && error.empty()) error = "root fiber: " + exit.cause().pretty();
  }
  print_word("million_completes", error.empty() ? "yes" : "no", "yes/no");
  if (!error.empty()) fail(a.kernel, error, __FILE__, __LINE__);
  print("million_rss_per_fiber", per_fiber, "bytes/task");
  print("million_interrupt_all", interrupt_ns / 1e6, "ms");
  print("million_peak_rss", static_cast<double>(peak_rss_bytes()) / 1e6, "MB");
  return 0;
}
