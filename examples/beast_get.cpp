// weft-example: not-sanitized
// HTTP through the Asio bridge: a weft fiber GETs pages from a local Beast
// server with weft::asio::use_fiber, puts a 200 ms timeout on a slow page,
// and goes on working after the timeout cancelled its read.
//
// The server is plain Asio (C++20 coroutines) on a weft::asio::IoContext:
// "/" answers at once, "/slow" after 2 s.
#include <weft/asio.hpp>
#include <weft/weft.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using net::ip::tcp;
using namespace std::chrono_literals;
using weft::asio::use_fiber;

namespace {

// serve() answers the requests of one connection until the client leaves.
net::awaitable<void> serve(tcp::socket socket) {
  beast::flat_buffer buffer;
  for (;;) {
    http::request<http::string_body> req;
    auto [read_error, n] =
        co_await http::async_read(socket, buffer, req, net::as_tuple(net::use_awaitable));
    if (read_error) co_return;
    http::response<http::string_body> res(http::status::ok, req.version());
    if (req.target() == "/slow") {
      net::steady_timer delay(socket.get_executor(), 2s);
      co_await delay.async_wait(net::use_awaitable);
      res.body() = "sorry for the wait\n";
    } else {
      res.body() = "hello from /\n";
    }
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    auto [write_error, m] =
        co_await http::async_write(socket, res, net::as_tuple(net::use_awaitable));
    if (write_error) co_return;
  }
}

// listen() accepts connections and serves each in its own coroutine.
net::awaitable<void> listen(tcp::acceptor acceptor) {
  for (;;) {
    tcp::socket socket = co_await acceptor.async_accept(net::use_awaitable);
    net::co_spawn(acceptor.get_executor(), serve(std::move(socket)), net::detached);
  }
}

// fetch() GETs `target` on a fresh connection. Each call below parks the
// calling fiber, never a thread; an interrupt cancels the one in progress.
std::string fetch(weft::asio::IoContext& io, const tcp::endpoint& at, const char* target) {
  beast::tcp_stream stream(io.get_executor());
  stream.async_connect(at, use_fiber);
  http::request<http::empty_body> req(http::verb::get, target, 11);
  req.set(http::field::host, "127.0.0.1");
  http::async_write(stream, req, use_fiber);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::async_read(stream, buffer, res, use_fiber);
  return std::to_string(res.result_int()) + " " + res.body();
}

}  // namespace

int main() {
  // The IoContext outlives the Runtime: an interrupted fiber waits for its
  // operation's handler, which needs the io_context running.
  weft::asio::IoContext io;
  tcp::acceptor acceptor(io.get(), {net::ip::address_v4::loopback(), 0});
  const tcp::endpoint at = acceptor.local_endpoint();
  net::co_spawn(io.get(), listen(std::move(acceptor)), net::detached);

  weft::Runtime runtime({.workers = 2});
  return runtime.block_on_main([&] {
    std::printf("GET /     -> %s", fetch(io, at, "/").c_str());

    const auto start = std::chrono::steady_clock::now();
    std::optional<std::string> slow = weft::timeout(200ms, [&] { return fetch(io, at, "/slow"); });
    const auto waited = std::chrono::steady_clock::now() - start;
    std::printf("GET /slow -> %s after %lld ms\n", slow ? "answered" : "timed out",
                static_cast<long long>(
                    std::chrono::duration_cast<std::chrono::milliseconds>(waited).count()));

    // The timeout cancelled the read and closed that connection (HTTP/1.1
    // cannot cancel a request in flight); the client goes on with a new one.
    std::printf("GET /     -> %s", fetch(io, at, "/").c_str());
    return !slow && waited < 1s ? 0 : 1;
  });
}
