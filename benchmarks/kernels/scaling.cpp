// scaling: skynet (1,000,000 leaves) on a runtime with 1 worker, then on one
// with --workers N (default 2). Prints the medians and the speedup
// (higher is better; the target is >= 1.8x from 1 to 2 workers).
#include "common.hpp"

int main(int argc, char** argv) {
  using namespace weft::bench;
  const Args a = parse_args(argc, argv, "scaling");
  const std::uint64_t leaves = a.quick ? 10'000 : 1'000'000;
  auto run_with = [&](unsigned workers) {
    Args b = a;
    b.workers = workers;
    weft::Runtime rt(runtime_options(b));
    Watchdog dog(b, &rt);
    return skynet_median_ms(b, rt, leaves);
  };
  const double one = run_with(1);
  const double many = run_with(a.workers);
  print("scaling_skynet_1w", one, "ms");
  const std::string name = "scaling_skynet_" + std::to_string(a.workers) + "w";
  print(name.c_str(), many, "ms");
  print("scaling", one / many, "x");
  return 0;
}
