// tcp_echo: 256 client fibers, each on its own loopback connection, each
// makes 1,000 round trips (write 64 bytes, read exactly 64 back, compare);
// the server runs one echo fiber per accepted connection (read up to 4 KiB,
// write back all it read). Per run, as every peer: a fresh listener; an
// accept fiber accepts exactly 256 connections and forks one echo fiber each
// while the root fiber connects them (not timed). Timed: fork the 256 clients
// and join them. Then (not timed) the clients close, every echo fiber ends at
// end of stream and is joined, and the descriptor count is checked to be back
// where it was after the warm-up run.
// Prints: BENCH tcp_echo <ns per round trip> ns/roundtrip (median of 5 runs
//         after a warm-up, wall / (256 x 1,000)) and
//         BENCH tcp_echo_peak_rss <MB> MB (process peak, all 6 runs).
#include "io_common.hpp"

#include <weft/deferred.hpp>

#include <cstring>

namespace {

using namespace weft::bench;
namespace io = weft::io;

constexpr std::size_t kMessage = 64;  // bytes per message

// Sizes are a run's connection and round-trip counts.
struct Sizes {
  std::size_t conns;
  std::size_t round_trips;
};

// echo_client() makes `n` round trips on `c` and checks every echo.
void echo_client(const Args& a, io::TcpStream& c, std::size_t id, std::size_t n) {
  std::array<std::byte, kMessage> msg;
  std::array<std::byte, kMessage> got;
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t k = 0; k < kMessage; ++k) msg[k] = std::byte(id * 131 + i * 7 + k);
    c.write_all(msg);
    c.read_exact(got);
    WEFT_BENCH_CHECK(a, std::memcmp(msg.data(), got.data(), kMessage) == 0,
                     "client " + std::to_string(id) + ": echoed bytes differ");
  }
}

// accept_and_serve() accepts `conns` connections, forks an echo fiber for
// each, completes `accepted`, then joins the echo fibers (a failure of one
// is rethrown here and reaches the root through this fiber's join).
void accept_and_serve(io::TcpListener& listener, std::size_t conns,
                      weft::Deferred<void>& accepted) {
  std::vector<weft::Fiber<void>> servers;
  servers.reserve(conns);
  for (std::size_t i = 0; i < conns; ++i) {
    io::TcpStream s = listener.accept();
    s.set_nodelay(true);
    servers.push_back(weft::fork([s = std::move(s)]() mutable { echo_serve(s); }));
  }
  accepted.succeed();
  for (auto& f : servers) f.join();
}

// echo_run() is one run; returns the ns of its timed section (the round trips).
double echo_run(const Args& a, Sizes z) {
  io::TcpListener listener = io::TcpListener::bind("127.0.0.1", 0);
  const io::Endpoint at = listener.local_endpoint();
  weft::Deferred<void> accepted;
  auto acceptor = weft::fork([&] { accept_and_serve(listener, z.conns, accepted); });
  std::vector<io::TcpStream> clients;
  clients.reserve(z.conns);
  for (std::size_t i = 0; i < z.conns; ++i) {
    clients.push_back(io::TcpStream::connect(at));
    clients.back().set_nodelay(true);
  }
  WEFT_BENCH_CHECK(a, accepted.await_for(std::chrono::seconds(30)),
                   "the accept fiber did not accept every connection");

  std::vector<weft::Fiber<void>> fibers;
  fibers.reserve(z.conns);
  const double ns = elapsed_ns([&] {
    for (std::size_t i = 0; i < z.conns; ++i) {
      fibers.push_back(
          weft::fork([&a, &c = clients[i], i, z] { echo_client(a, c, i, z.round_trips); }));
    }
    for (auto& f : fibers) f.join();
  });

  for (auto& c : clients) c.close();
  acceptor.join();
  listener.close();
  return ns;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse_args(argc, argv, "tcp_echo");
  const Sizes z = a.quick ? Sizes{32, 100} : Sizes{256, 1'000};
  raise_nofile(a, 2 * z.conns + 64);
  weft::Runtime rt(runtime_options(a));
  Watchdog dog(a, &rt);
  std::vector<double> runs;
  run_root(a, rt, [&] {
    (void)echo_run(a, z);  // warm-up; also opens the reactor's own descriptors
    const std::size_t base = open_fds(a);
    for (int i = 0; i < 5; ++i) {
      runs.push_back(echo_run(a, z));
      check_fds(a, base);
    }
  });
  print("tcp_echo", median_of(runs) / static_cast<double>(z.conns * z.round_trips), "ns/roundtrip");
  print("tcp_echo_peak_rss", static_cast<double>(peak_rss_bytes()) / 1e6, "MB");
  return 0;
}
