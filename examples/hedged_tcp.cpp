// A hedged request over TCP (Dean and Barroso, "The Tail at Scale", CACM
// 2013): send the request to the primary replica; if it has not answered
// within a hedge delay, send it to a second replica too, and take whichever
// answer comes first. race() interrupts the loser and waits for it: its
// socket, an RAII object, is closed by its finalizer before race() returns.
// The slow replica then reads end of stream on that connection, which proves
// the client really hung up; this program checks it (exit 1 if not).
// (examples/hedged_request.cpp is the same idea without sockets.)
#include <weft/io.hpp>
#include <weft/weft.hpp>

#include <fmt/format.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

using namespace std::chrono_literals;
namespace io = weft::io;

namespace {

constexpr auto kHedgeDelay = 50ms;

// read_line() returns the next line, '\n' included ("" at end of stream).
std::string read_line(io::TcpStream& stream) {
  std::string line;
  std::array<std::byte, 256> buf;
  while (line.find('\n') == std::string::npos) {
    const std::size_t n = stream.read_some(buf);
    if (n == 0) return {};
    line.append(reinterpret_cast<const char*>(buf.data()), n);
  }
  return line;  // the protocol has one request and one answer per connection
}

// Replica is a server that takes `latency` to answer each request.
struct Replica {
  Replica(const char* n, std::chrono::milliseconds l) : name(n), latency(l) {}

  const char* name;
  std::chrono::milliseconds latency;
  io::TcpListener listener = io::TcpListener::bind("127.0.0.1", 0);
  weft::Deferred<void> saw_hang_up;  // a client closed its connection before the answer

  // serve() answers every connection, each in its own fiber.
  void serve() {
    weft::Scope connections;
    for (;;) {
      io::TcpStream stream = listener.accept();
      connections.fork([this, s = std::move(stream)]() mutable {
        try {
          answer(s);
        } catch (const std::system_error& e) {  // one connection's error is not the server's
          fmt::print("  {}: {}\n", name, e.what());
        }
      });
    }
  }

  // answer() reads one request and answers it after `latency`, unless the
  // client hangs up first: while it "thinks", it reads, and a read that
  // returns 0 (end of stream) is the client's close.
  void answer(io::TcpStream& stream) {
    const std::string request = read_line(stream);
    if (request.empty()) return;
    std::array<std::byte, 64> buf;
    std::size_t n = 1;
    // The count goes to `n` rather than being returned, so that it is never
    // lost, even if the deadline comes just as the read returns (DESIGN 3.5,
    // docs/cancel-safety.md); read_some itself is cancel-safe.
    (void)weft::timeout(latency, [&] { n = stream.read_some(buf); });
    if (n == 0) {
      fmt::print("  {}: the client hung up before the answer\n", name);
      saw_hang_up.try_succeed();
      return;
    }
    stream.write_all(io::as_bytes(fmt::format("{} answers {}", name, request)));
  }
};

// ask() sends `request` to `at` and returns the one-line answer. Interrupted
// (the loser of the race), it unwinds and its finalizer closes the socket.
std::string ask(const char* who, const io::Endpoint& at, std::string_view request,
                weft::Deferred<void>* sent, std::atomic<int>& hung_up) {
  io::TcpStream stream = io::TcpStream::connect(at);
  weft::OnExit close([&](const weft::Cause& why) {
    if (sent != nullptr) sent->try_succeed();  // also on a failure: the hedge must not wait forever
    stream.close();
    if (why.has_interrupt()) {
      fmt::print("  client -> {}: lost the race, connection closed by its finalizer\n", who);
      ++hung_up;
    }
  });
  stream.write_all(io::as_bytes(request));
  fmt::print("  client -> {}: request sent\n", who);
  if (sent != nullptr) sent->try_succeed();
  std::string answer = read_line(stream);
  if (answer.empty()) throw std::runtime_error(fmt::format("{} closed without answering", who));
  return answer;
}

}  // namespace

int main() {
  weft::Runtime runtime({.workers = 2});
  weft::Exit<bool> result = runtime.block_on([] {
    Replica primary{"replica A", 10s};  // slow today
    Replica secondary{"replica B", 5ms};
    weft::Scope servers;  // ~Scope stops them: accept() is cancel-safe
    servers.fork([&] { primary.serve(); });
    servers.fork([&] { secondary.serve(); });

    std::atomic<int> hung_up{0};
    weft::Deferred<void> primary_sent;
    const std::string request = "GET /profile/42\n";
    fmt::print("hedged request, hedge delay {} ms:\n", kHedgeDelay.count());
    const std::string answer = weft::race(
        [&] {
          return ask(primary.name, primary.listener.local_endpoint(), request, &primary_sent,
                     hung_up);
        },
        [&] {
          primary_sent.await();                      // the primary's request is out...
          weft::this_fiber::sleep_for(kHedgeDelay);  // ...and not answered within the hedge delay
          return ask(secondary.name, secondary.listener.local_endpoint(), request, nullptr,
                     hung_up);
        });
    fmt::print("race returned: {}", answer);

    // race() awaited the loser, so its finalizer has run; the slow replica
    // sees the close a moment later (bounded wait: it comes, or the check fails).
    const bool closed_in_race = hung_up.load() == 1;
    const bool replica_saw_it = primary.saw_hang_up.await_for(5s);
    const bool ok = answer.starts_with("replica B answers") && closed_in_race && replica_saw_it;
    fmt::print(
        "check: {} (winner replica B: {}, loser closed before race returned: {}, "
        "replica A saw end of stream: {})\n",
        ok ? "ok" : "FAILED", answer.starts_with("replica B"), closed_in_race, replica_saw_it);
    return ok;
  });
  if (!result.ok()) fmt::print("failed: {}\n", result.cause().pretty());
  return result.ok() && result.value() ? 0 : 1;
}
