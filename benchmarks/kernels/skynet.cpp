// skynet: a 10-ary tree of fibers, 6 levels, 1,000,000 leaves (1,111,111
// fibers per run); each leaf returns its index, each inner fiber forks 10
// children and sums what it joins. Checks the sum 499999500000.
// Prints: BENCH skynet <ms> ms, and the process's peak RSS.
#include "common.hpp"

int main(int argc, char** argv) {
  using namespace weft::bench;
  const Args a = parse_args(argc, argv, "skynet");
  const std::uint64_t leaves = a.quick ? 10'000 : 1'000'000;
  weft::Runtime rt(runtime_options(a));
  Watchdog dog(a, &rt);
  print("skynet", skynet_median_ms(a, rt, leaves), "ms");
  print("skynet_peak_rss", static_cast<double>(peak_rss_bytes()) / 1e6, "MB");
  return 0;
}
