// A client with a deadline per request, on one TCP connection, done the two
// correct ways. Which one depends on what the deadline may interrupt
// (DESIGN 3.13, docs/cancel-safety.md):
//
// run 1, keep the connection. The deadline covers only cancel-safe calls:
//   read_some, which, interrupted, has consumed no byte. The bytes read so far
//   live outside the timed task, in the connection's inbox, so a timeout
//   leaves the stream at a byte boundary the client knows; the late reply of
//   a timed-out request still arrives and is recognised by its id and
//   skipped. The request is sent before the deadline starts: write_all is not
//   cancel-safe, and half a request would desynchronise the server.
//
// run 2, reconnect. The deadline covers read_exact, which is not cancel-safe:
//   interrupted midway, it has consumed part of a reply and nobody knows how
//   much. After a timeout the stream's framing is lost, so the connection is
//   closed and a new one opened (the late reply goes to the closed one).
//
// The server answers each request after the delay the request asks for
// (standing in for a slow query), several at a time, in any order.
// Requests 3, 4 and 7 ask for more than the deadline. Exits 0 when exactly
// those time out and every other gets its own reply, in both runs.
#include <weft/io.hpp>
#include <weft/weft.hpp>

#include <fmt/format.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

using namespace std::chrono_literals;
namespace io = weft::io;

namespace {

constexpr auto kDeadline = 200ms;
constexpr auto kSlow = 300ms;
constexpr int kRequests = 8;
constexpr std::size_t kReplySize = 8;  // "0007 ok\n"

bool is_slow(int id) { return id == 3 || id == 4 || id == 7; }

// request() is "0007 0300\n": the id and the delay asked for, in ms.
std::string request(int id) {
  const auto delay = is_slow(id) ? kSlow : 0ms;
  return fmt::format("{:04} {:04}\n", id, delay.count());
}

// read_line() returns the next line, '\n' included ("" at end of stream),
// keeping the bytes after it in `inbox`. Cancel-safe when `inbox` outlives
// the call: every byte read_some returns is appended before the next yield
// point, so an interrupt finds it in `inbox`, never in flight.
std::string read_line(io::TcpStream& stream, std::string& inbox) {
  std::array<std::byte, 256> buf;
  for (;;) {
    if (std::size_t end = inbox.find('\n'); end != std::string::npos) {
      std::string line = inbox.substr(0, end + 1);
      inbox.erase(0, end + 1);
      return line;
    }
    const std::size_t n = stream.read_some(buf);
    if (n == 0) return {};
    inbox.append(reinterpret_cast<const char*>(buf.data()), n);
  }
}

// serve_connection() answers each request in a fiber of its own; when the
// client hangs up, ~Scope interrupts the answers still being prepared.
void serve_connection(io::TcpStream& stream) {
  weft::Mutex writing;  // one reply at a time on the stream
  weft::Scope answers;
  std::string inbox;
  for (std::string line; !(line = read_line(stream, inbox)).empty();) {
    answers.fork([&stream, &writing, line] {
      weft::this_fiber::sleep_for(std::chrono::milliseconds(std::stoi(line.substr(5, 4))));
      std::lock_guard lk(writing);
      try {
        stream.write_all(io::as_bytes(line.substr(0, 4) + " ok\n"));
      } catch (const std::system_error&) {  // the client has gone; so has the reply
      }
    });
  }
}

// serve() accepts connections until interrupted.
void serve(io::TcpListener& listener) {
  weft::Scope connections;
  for (;;) {
    io::TcpStream stream = listener.accept();
    connections.fork([s = std::move(stream)]() mutable {
      try {
        serve_connection(s);
      } catch (const std::system_error& e) {
        fmt::print("  server: {}\n", e.what());
      }
    });
  }
}

// Results holds, per request id, whether it was answered in time.
using Results = std::vector<bool>;

bool as_expected(const char* run, const Results& answered) {
  bool ok = true;
  std::string line;
  for (int id = 1; id <= kRequests; ++id) {
    line += fmt::format(" {}:{}", id, answered[id] ? "ok" : "timeout");
    ok = ok && answered[id] == !is_slow(id);
  }
  fmt::print("  {}:{} -> {}\n", run, line, ok ? "as expected" : "UNEXPECTED");
  return ok;
}

// keep_connection() is run 1.
bool keep_connection(const io::Endpoint& server) {
  io::TcpStream stream = io::TcpStream::connect(server);
  std::string inbox;  // received, not yet parsed: outlives every timed read
  int stale = 0;      // late replies of timed-out requests, skipped
  Results answered(kRequests + 1);
  for (int id = 1; id <= kRequests; ++id) {
    stream.write_all(io::as_bytes(request(id)));  // outside the deadline: not cancel-safe
    answered[id] = weft::timeout(kDeadline, [&] {
                     for (;;) {
                       const std::string reply = read_line(stream, inbox);
                       if (reply.empty()) throw std::runtime_error("the server hung up");
                       if (std::stoi(reply.substr(0, 4)) == id) return;
                       ++stale;  // an earlier request's, arriving after its deadline
                     }
                   }).has_value();
  }
  fmt::print("  run 1 skipped {} late replies on the one connection\n", stale);
  return as_expected("run 1 (keep the connection)", answered);
}

// reconnect() is run 2.
bool reconnect(const io::Endpoint& server) {
  io::TcpStream stream = io::TcpStream::connect(server);
  int reconnects = 0;
  Results answered(kRequests + 1);
  for (int id = 1; id <= kRequests; ++id) {
    stream.write_all(io::as_bytes(request(id)));
    std::array<char, kReplySize> reply;
    answered[id] = weft::timeout(kDeadline, [&] {
                     stream.read_exact(std::as_writable_bytes(std::span(reply)));
                   }).has_value();
    if (!answered[id]) {
      // read_exact may have consumed part of the reply: the framing is lost.
      stream = io::TcpStream::connect(server);  // closes the old one
      ++reconnects;
    } else if (std::stoi(std::string(reply.data(), 4)) != id) {
      throw std::runtime_error(fmt::format("request {} got another request's reply", id));
    }
  }
  fmt::print("  run 2 reconnected {} times\n", reconnects);
  return as_expected("run 2 (reconnect)", answered) && reconnects == 3;
}

}  // namespace

int main() {
  weft::Runtime runtime({.workers = 2});
  weft::Exit<bool> result = runtime.block_on([] {
    io::TcpListener listener = io::TcpListener::bind("127.0.0.1", 0);
    weft::Scope server;
    server.fork([&] { serve(listener); });
    fmt::print("{} requests, deadline {} ms, requests 3, 4 and 7 take {} ms:\n", kRequests,
               kDeadline.count(), kSlow.count());
    const bool run1 = keep_connection(listener.local_endpoint());
    const bool run2 = reconnect(listener.local_endpoint());
    return run1 && run2;
  });
  if (!result.ok()) fmt::print("failed: {}\n", result.cause().pretty());
  const bool ok = result.ok() && result.value();
  fmt::print("{}\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
