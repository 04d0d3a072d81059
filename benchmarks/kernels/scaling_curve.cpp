// scaling_curve: skynet (1,000,000 leaves; 10,000 with --quick) on runtimes
// of 1, 2, 4, 8 and 16 workers, one after the other, each its own median.
// Prints "BENCH scaling_skynet_<N>w <ms> ms" per point and the speedup over
// one worker, "BENCH scaling_curve_<N>w <x> x". No target: a curve (weft
// only in benchmarks/compare). --workers is ignored. On a machine with fewer
// cores than N the points past the core count measure oversubscription (the
// workers time-share the cores), not parallel speedup.
#include "common.hpp"

#include <string>

int main(int argc, char** argv) {
  using namespace weft::bench;
  const Args a = parse_args(argc, argv, "scaling_curve");
  const std::uint64_t leaves = a.quick ? 10'000 : 1'000'000;
  double one = 0;
  for (const unsigned workers : {1u, 2u, 4u, 8u, 16u}) {
    Args b = a;
    b.workers = workers;
    double ms = 0;
    {
      weft::Runtime rt(runtime_options(b));
      Watchdog dog(b, &rt);
      ms = skynet_median_ms(b, rt, leaves);
    }
    if (workers == 1) one = ms;
    const std::string n = std::to_string(workers) + "w";
    print(("scaling_skynet_" + n).c_str(), ms, "ms");
    print(("scaling_curve_" + n).c_str(), one / ms, "x");
  }
  return 0;
}
