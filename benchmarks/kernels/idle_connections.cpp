// idle_connections: 10,000 accepted loopback connections (9,900 where the
// hard RLIMIT_NOFILE is 20,000: io_conns()), one server fiber each (the
// tcp_echo echo fiber, 4 KiB buffer) parked reading; their clients idle.
// RSS (/proc/self/statm) before the first connect and after every server
// fiber has started + 20 ms (to let the last ones park, as the peers do);
// the client and fiber-handle vectors are allocated and touched before the
// baseline. So the delta holds both ends' user-space state, the fibers and
// their stacks (kernel socket memory is not RSS). Then the clients close and
// every server fiber ends at end of stream and is joined.
// Prints: BENCH idle_connections <RSS bytes per connection> bytes/conn and
//         BENCH idle_connections_n <connections> conns.
#include "io_common.hpp"

#include <weft/latch.hpp>

int main(int argc, char** argv) {
  using namespace weft::bench;
  using namespace std::chrono_literals;
  namespace io = weft::io;
  const Args a = parse_args(argc, argv, "idle_connections");
  const std::size_t n = io_conns(a);
  raise_nofile(a, 2 * n + 64);
  weft::Runtime rt(runtime_options(a));
  Watchdog dog(a, &rt);
  double per_conn = 0;
  run_root(a, rt, [&] {
    io::TcpListener listener = io::TcpListener::bind("127.0.0.1", 0);
    const io::Endpoint at = listener.local_endpoint();
    std::vector<io::TcpStream> clients(n);      // touched before the baseline
    std::vector<weft::Fiber<void>> servers(n);  // likewise
    weft::Latch started(static_cast<std::ptrdiff_t>(n));
    const long before = rss_bytes();
    for (std::size_t i = 0; i < n; ++i) {
      Pair p = connect_pair(listener, at);
      clients[i] = std::move(p.client);
      servers[i] = weft::fork([s = std::move(p.server), &started]() mutable {
        started.count_down();
        echo_serve(s);
      });
    }
    WEFT_BENCH_CHECK(a, started.wait_for(10s), "the server fibers did not all start");
    weft::this_fiber::sleep_for(20ms);
    const long after = rss_bytes();
    per_conn = static_cast<double>(after - before) / static_cast<double>(n);
    for (auto& c : clients) c.close();
    for (auto& f : servers) f.join();  // each ends at end of stream
    listener.close();
  });
  print("idle_connections", per_conn, "bytes/conn");
  print("idle_connections_n", static_cast<double>(n), "conns");
  return 0;
}
