// spawn_batch: fork 100,000 trivial fibers, then join them all (in order).
// Checks the sum of the returned indices.
// Prints: BENCH spawn_batch <ns per fiber> ns/op
#include "common.hpp"

int main(int argc, char** argv) {
  using namespace weft::bench;
  const Args a = parse_args(argc, argv, "spawn_batch");
  const std::uint64_t n = a.quick ? 10'000 : 100'000;
  weft::Runtime rt(runtime_options(a));
  Watchdog dog(a, &rt);
  double ns = 0;
  run_root(a, rt, [&] {
    ns = median_ns([&] {
      std::vector<weft::Fiber<std::uint64_t>> fibers;
      fibers.reserve(n);
      for (std::uint64_t i = 0; i < n; ++i) fibers.push_back(weft::fork([i] { return i; }));
      std::uint64_t sum = 0;
      for (auto& f : fibers) sum += f.join();
      WEFT_BENCH_CHECK(a, sum == n * (n - 1) / 2, "spawn_batch sum " + std::to_string(sum));
    });
  });
  print("spawn_batch", ns / static_cast<double>(n), "ns/op");
  return 0;
}
