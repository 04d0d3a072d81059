// spawn_join: from one fiber, fork 1,000,000 trivial fibers one at a time and
// join each before forking the next. Checks the sum of the returned indices.
// Prints: BENCH spawn_join <ns per fork+join> ns/op
#include "common.hpp"

int main(int argc, char** argv) {
  using namespace weft::bench;
  const Args a = parse_args(argc, argv, "spawn_join");
  const std::uint64_t n = a.quick ? 20'000 : 1'000'000;
  weft::Runtime rt(runtime_options(a));
  Watchdog dog(a, &rt);
  double ns = 0;
  run_root(a, rt, [&] {
    ns = median_ns([&] {
      std::uint64_t sum = 0;
      for (std::uint64_t i = 0; i < n; ++i) sum += weft::fork([i] { return i; }).join();
      WEFT_BENCH_CHECK(a, sum == n * (n - 1) / 2, "spawn_join sum " + std::to_string(sum));
    });
  });
  print("spawn_join", ns / static_cast<double>(n), "ns/op");
  return 0;
}
