// race: 100,000 rounds of weft::race(slow, fast): fast returns 1 at once;
// slow installs a finalizer (OnExit: counter++) and sleeps for an hour. The
// winner's value is returned and the loser has been interrupted and fully
// finalized before race returns: checked every round (value == 1, and every
// loser whose body started has run its finalizer).
//
// Why slow first: weft forks contestants so that, on one worker, they start
// in argument order, and a loser interrupted before its body starts never
// runs it (DESIGN 3.2). race(fast, slow) would mostly end before the loser
// starts: no timer, no finalizer -- cheaper, and not the work the peers do
// (Go and Boost.Fiber always start both; Effect's comparable number is
// race_slow_first for the same reason). The kernel counts the loser's starts
// and reports them on stderr; race_fast_first is printed as a supplement.
// Prints: BENCH race <ns per race> ns/op
//         BENCH race_fast_first <ns per race> ns/op   (supplementary)
#include "common.hpp"

#include <weft/race.hpp>

namespace {

struct Counters {
  std::atomic<std::uint64_t> started{0}, finalized{0};
};

// slow() is the loser: a finalizer, then an hour's sleep.
int slow(Counters& c) {
  c.started.fetch_add(1, std::memory_order_relaxed);
  weft::OnExit finalizer{[&] { c.finalized.fetch_add(1, std::memory_order_relaxed); }};
  weft::this_fiber::sleep_for(std::chrono::hours(1));
  return 2;
}

// measure() runs `rounds` races per run (median of 5 after a warm-up) and
// checks every round; returns ns per race and the loser's start ratio.
template <class Race>
std::pair<double, double> measure(const weft::bench::Args& a, std::uint64_t rounds, Race race) {
  Counters c;
  const double ns = weft::bench::median_ns([&] {
    for (std::uint64_t i = 0; i < rounds; ++i) {
      const int v = race(c);
      if (v != 1 || c.finalized.load(std::memory_order_relaxed) !=
                        c.started.load(std::memory_order_relaxed)) {
        weft::bench::fail(a.kernel,
                          "round " + std::to_string(i) + ": winner " + std::to_string(v) +
                              ", loser started " + std::to_string(c.started.load()) +
                              " times but finalized " + std::to_string(c.finalized.load()),
                          __FILE__, __LINE__);
      }
    }
  });
  return {ns / static_cast<double>(rounds),
          static_cast<double>(c.started.load()) / static_cast<double>(6 * rounds)};
}

}  // namespace

int main(int argc, char** argv) {
  using namespace weft::bench;
  const Args a = parse_args(argc, argv, "race");
  const std::uint64_t rounds = a.quick ? 5'000 : 100'000;
  weft::Runtime rt(runtime_options(a));
  Watchdog dog(a, &rt);
  std::pair<double, double> main_run, fast_first;
  run_root(a, rt, [&] {
    main_run = measure(a, rounds, [](Counters& c) {
      return weft::race([&c] { return slow(c); }, [] { return 1; });
    });
    fast_first = measure(a, rounds, [](Counters& c) {
      return weft::race([] { return 1; }, [&c] { return slow(c); });
    });
  });
  print("race", main_run.first, "ns/op");
  print("race_fast_first", fast_first.first, "ns/op");
  std::fprintf(stderr, "race: the loser started in %.1f%% of races (race_fast_first: %.1f%%)\n",
               100.0 * main_run.second, 100.0 * fast_first.second);
  return 0;
}
