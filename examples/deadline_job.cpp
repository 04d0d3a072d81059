// A multi-step job under a deadline. timeout() interrupts the job when the
// time runs out, waits for its finalizers, and reports which steps finished.
// The first run fits in its deadline; in the second, step 4 hangs.
#include <weft/weft.hpp>

#include <chrono>
#include <cstdio>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

// Job runs numbered steps and remembers which ones finished.
struct Job {
  std::mutex mu;
  std::vector<int> finished;

  // run() executes steps 1..5; step `stuck` (0: none) waits on a dead peer.
  int run(int stuck) {
    weft::OnExit report([](const weft::Cause& cause) {
      std::printf("  job: %s\n", cause.empty() ? "all steps done" : "stopped, releasing its lease");
    });
    int total = 0;
    for (int step = 1; step <= 5; ++step) {
      weft::this_fiber::sleep_for(step == stuck ? std::chrono::hours(1) : 10ms);
      total += step;
      std::lock_guard lk(mu);
      finished.push_back(step);
    }
    return total;
  }
  std::string steps() {
    std::lock_guard lk(mu);
    std::string s;
    for (int step : finished) s += " " + std::to_string(step);
    return s.empty() ? " none" : s;
  }
};

void attempt(const char* title, int stuck, std::chrono::milliseconds deadline) {
  std::printf("%s (deadline %lld ms):\n", title, static_cast<long long>(deadline.count()));
  Job job;
  std::optional<int> result = weft::timeout(deadline, [&] { return job.run(stuck); });
  if (result) {
    std::printf("  result %d; finished steps:%s\n", *result, job.steps().c_str());
  } else {
    std::printf("  timed out; finished steps:%s\n", job.steps().c_str());
  }
}

}  // namespace

int main() {
  weft::Runtime runtime({.workers = 2});
  weft::Exit<void> e = runtime.block_on([] {
    attempt("run 1", /*stuck=*/0, 1000ms);
    attempt("run 2", /*stuck=*/4, 300ms);
  });
  return e.ok() ? 0 : 1;
}
