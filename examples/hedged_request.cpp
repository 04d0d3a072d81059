// Hedged request: ask one replica; if it has not answered within a hedge
// delay, ask a second one too, and take whichever answers first. The loser is
// interrupted by race() and its clean-up (an OnExit) has run before race
// returns. Latencies are simulated with sleep_for.
#include <weft/weft.hpp>

#include <chrono>
#include <cstdio>
#include <string>

using namespace std::chrono_literals;

namespace {

// fetch() simulates a request to a replica that answers after `latency`.
std::string fetch(const char* replica, std::chrono::milliseconds latency) {
  weft::OnExit cleanup([replica](const weft::Cause& cause) {
    if (cause.empty()) {
      std::printf("  %s: answered, connection returned to the pool\n", replica);
    } else {
      std::printf("  %s: cancelled, connection closed\n", replica);
    }
  });
  std::printf("  %s: request sent\n", replica);
  weft::this_fiber::sleep_for(latency);
  return std::string("profile of user 42 from ") + replica;
}

}  // namespace

int main() {
  weft::Runtime runtime({.workers = 2});
  weft::Exit<std::string> result = runtime.block_on([] {
    std::printf("hedged request (replica A is slow today):\n");
    std::string answer = weft::race([] { return fetch("replica A", 1500ms); },
                                    [] {
                                      weft::this_fiber::sleep_for(50ms);  // the hedge delay
                                      return fetch("replica B", 30ms);
                                    });
    std::printf("race returned: %s\n", answer.c_str());
    return answer;
  });
  return result.ok() ? 0 : 1;
}
