// idle_memory: 100,000 fibers parked on a never-completed wait (a shared
// weft::Deferred<void>); RSS (/proc/self/statm) before forking and after all
// have started (+20 ms to let the last ones park, as the Go peer does); the
// handle vector is allocated before the baseline. Then all are interrupted.
// Prints: BENCH idle_memory <RSS bytes per fiber> bytes/task
#include "common.hpp"

#include <weft/deferred.hpp>

int main(int argc, char** argv) {
  using namespace weft::bench;
  using namespace std::chrono_literals;
  const Args a = parse_args(argc, argv, "idle_memory");
  const std::size_t n = a.quick ? 10'000 : 100'000;
  weft::Runtime rt(runtime_options(a));
  Watchdog dog(a, &rt);
  double per_fiber = 0;
  run_root(a, rt, [&] {
    weft::Deferred<void> never;
    std::atomic<std::size_t> started{0};
    std::vector<weft::Fiber<void>> fibers(n);  // allocated and touched before the baseline
    const long before = rss_bytes();
    for (std::size_t i = 0; i < n; ++i) {
      fibers[i] = weft::fork([&] {
        started.fetch_add(1, std::memory_order_relaxed);
        never.await();
      });
    }
    while (started.load(std::memory_order_relaxed) < n) weft::this_fiber::yield();
    weft::this_fiber::sleep_for(20ms);
    const long after = rss_bytes();
    per_fiber = static_cast<double>(after - before) / static_cast<double>(n);
    weft::interrupt_all(std::span(fibers));
    for (auto& f : fibers)
      WEFT_BENCH_CHECK(a, f.poll()->interrupted(), "a parked fiber did not end interrupted");
  });
  print("idle_memory", per_fiber, "bytes/task");
  return 0;
}
