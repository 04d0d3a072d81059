// read_timeout: 10,000 loopback pairs (9,900 where the hard RLIMIT_NOFILE is
// 20,000: io_conns()) are set up once by connecting and accepting in turn.
// Then 1 warm-up + 5 measured rounds of: one fiber per pair puts a 20 ms
// weft::timeout on reading one byte from its accepted socket, whose client
// never writes; join all and check that every read timed out. After the last
// round every client writes one byte (its index mod 256) and every accepted
// socket must read exactly that byte: a timed-out read consumed nothing.
// weft::timeout runs the read in a child fiber and interrupts it at the
// deadline (two fibers per read, as Effect's timeoutOption; Go sets a read
// deadline, Tokio drops the read future, Asio cancels the read operation).
// Prints: BENCH read_timeout <ms per round> ms/round (median of the 5),
//         BENCH read_timeout_n <pairs> conns and
//         BENCH read_timeout_peak_rss <MB> MB (process peak).
#include "io_common.hpp"

#include <weft/timeout.hpp>

namespace {

using namespace weft::bench;
using namespace std::chrono_literals;
namespace io = weft::io;

// read_one() reads one byte from `s` under a timeout of `d`: the byte, or
// -1 when the timeout fired first.
int read_one(io::TcpStream& s, std::chrono::nanoseconds d) {
  std::byte b{};
  auto n = weft::timeout(d, [&s, &b] { return s.read_some(std::span(&b, 1)); });
  if (!n) return -1;
  return *n == 1 ? std::to_integer<int>(b) : -2;  // -2: end of stream
}

// timeout_round() runs one round over `servers`; checks that every read timed out.
void timeout_round(const Args& a, std::vector<io::TcpStream>& servers) {
  std::atomic<std::size_t> timed_out{0};
  std::vector<weft::Fiber<void>> fibers;
  fibers.reserve(servers.size());
  for (auto& s : servers) {
    fibers.push_back(weft::fork([&s, &timed_out] {
      // relaxed: the joins below order every increment before the check
      if (read_one(s, 20ms) == -1) timed_out.fetch_add(1, std::memory_order_relaxed);
    }));
  }
  for (auto& f : fibers) f.join();
  WEFT_BENCH_CHECK(a, timed_out.load() == servers.size(),
                   std::to_string(timed_out.load()) + " of " + std::to_string(servers.size()) +
                       " reads timed out");
}

// check_nothing_consumed() writes one byte to every client and checks that
// its accepted end reads exactly that byte.
void check_nothing_consumed(const Args& a, std::vector<io::TcpStream>& clients,
                            std::vector<io::TcpStream>& servers) {
  for (std::size_t i = 0; i < clients.size(); ++i) {
    const std::byte b{static_cast<unsigned char>(i)};
    clients[i].write_all(std::span(&b, 1));
  }
  for (std::size_t i = 0; i < servers.size(); ++i) {
    const int got = read_one(servers[i], 5s);
    WEFT_BENCH_CHECK(a, got == static_cast<int>(i % 256),
                     "socket " + std::to_string(i) + " read " + std::to_string(got) +
                         " after the rounds, not its byte " + std::to_string(i % 256));
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse_args(argc, argv, "read_timeout");
  const std::size_t pairs = io_conns(a);
  raise_nofile(a, 2 * pairs + 64);
  weft::Runtime rt(runtime_options(a));
  Watchdog dog(a, &rt);
  double ns = 0;
  run_root(a, rt, [&] {
    io::TcpListener listener = io::TcpListener::bind("127.0.0.1", 0);
    const io::Endpoint at = listener.local_endpoint();
    std::vector<io::TcpStream> clients;
    std::vector<io::TcpStream> servers;
    clients.reserve(pairs);
    servers.reserve(pairs);
    for (std::size_t i = 0; i < pairs; ++i) {
      Pair p = connect_pair(listener, at);
      clients.push_back(std::move(p.client));
      servers.push_back(std::move(p.server));
    }
    listener.close();
    ns = median_ns([&] { timeout_round(a, servers); });
    check_nothing_consumed(a, clients, servers);
  });
  print("read_timeout", ns / 1e6, "ms/round");
  print("read_timeout_n", static_cast<double>(pairs), "conns");
  print("read_timeout_peak_rss", static_cast<double>(peak_rss_bytes()) / 1e6, "MB");
  return 0;
}
