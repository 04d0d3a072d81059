// yield_pingpong: two fibers hand a token back and forth 1,000,000 times
// (500,000 round trips) over two weft::Channel<int> of capacity 1 -- the
// idiomatic hand-off, as the peers do it (Go: unbuffered channels, Tokio:
// mpsc::channel(1), Boost.Fiber: buffered_channel(2)). Checks the count.
// Prints: BENCH yield_pingpong <ns per hand-off> ns/op
#include "common.hpp"

#include <weft/channel.hpp>

int main(int argc, char** argv) {
  using namespace weft::bench;
  const Args a = parse_args(argc, argv, "yield_pingpong");
  const int n = a.quick ? 20'000 : 1'000'000;  // hand-offs
  weft::Runtime rt(runtime_options(a));
  Watchdog dog(a, &rt);
  double ns = 0;
  run_root(a, rt, [&] {
    ns = median_ns([&] {
      weft::Channel<int> ping(1), pong(1);
      auto echo = weft::fork([&] {
        while (std::optional<int> v = ping.receive()) pong.send(*v + 1);
      });
      int v = 0;
      for (int i = 0; i < n / 2; ++i) {
        ping.send(v);
        std::optional<int> back = pong.receive();
        WEFT_BENCH_CHECK(a, back.has_value(), "pong closed early");
        v = *back;
      }
      ping.close();
      echo.join();
      WEFT_BENCH_CHECK(a, v == n / 2, "pingpong count " + std::to_string(v));
    });
  });
  print("yield_pingpong", ns / n, "ns/op");
  return 0;
}
