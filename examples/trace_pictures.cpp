// weft-example: no-ctest
// Writes the two traces behind docs/trace-race.png and docs/trace-timeout.png
// (RuntimeOptions::trace_path), for tools/weft-trace to draw:
//   race.json     weft::race of a fast and a slow contestant: the fast one
//                 wins, the slow one is interrupted while it waits on a
//                 channel and runs its clean-up.
//   timeout.json  weft::timeout around a lookup that waits on a channel
//                 nobody sends on: at the deadline it is interrupted.
// The contestants compute for tens of microseconds (without a yield point)
// so that their runs are wide enough to see next to the waits.
//
//   trace_pictures [DIR]    (default: the current directory)
#include <weft/weft.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

using namespace std::chrono_literals;

namespace {

// compute_for() stands for CPU work: it runs for `d` without a yield point.
void compute_for(std::chrono::microseconds d) {
  const auto end = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < end) {
  }
}

// run_traced() runs f as the fiber "main" on a 2-worker runtime that traces
// to `path`; the file is complete when the runtime is destroyed.
template <class F>
void run_traced(const std::string& path, F f) {
  weft::RuntimeOptions options;
  options.workers = 2;
  options.name = "trace_pictures";
  options.trace_path = path;
  weft::Runtime runtime(options);
  if (!runtime.block_on(f, {.name = "main"}).ok()) {
    std::fprintf(stderr, "trace_pictures: %s: main failed\n", path.c_str());
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? std::string(argv[1]) + "/" : "";

  run_traced(dir + "race.json", [] {
    weft::Channel<int> never(1);  // nobody sends: the slow contestant waits
    const int winner = weft::race(
        [] {  // fast: computes, waits a little, computes, wins
          compute_for(60us);
          weft::this_fiber::sleep_for(50us);
          compute_for(20us);
          return 1;
        },
        [&] {  // slow: computes, then waits for a reply that never comes
          weft::OnExit cleanup([] { compute_for(20us); });  // e.g. a close
          compute_for(40us);
          return never.receive().value_or(2);
        });
    std::printf("race: contestant %d won\n", winner);
  });

  run_traced(dir + "timeout.json", [] {
    weft::Channel<int> replies(1);  // nobody replies: the lookup times out
    const auto reply = weft::timeout(150us, [&] {
      weft::OnExit cleanup([] { compute_for(20us); });
      compute_for(30us);
      return replies.receive().value_or(0);
    });
    std::printf("timeout: %s\n", reply ? "replied" : "timed out");
  });
  std::printf("wrote %srace.json and %stimeout.json\n", dir.c_str(), dir.c_str());
  return 0;
}
