// weft::io: pipes, TCP (IPv4 and IPv6), UDP, Fd ownership and close(),
// errors, plain threads, and the cancel-safety promises of DESIGN 3.13 that
// need no forced race (tests/test_io_races.cpp forces the races).
#include "support/scale.hpp"
#include "support/weft_test.hpp"

#include <weft/io.hpp>
#include <weft/weft.hpp>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <dirent.h>
#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <latch>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace weft {
namespace {

using test::RuntimeTest;
using namespace std::chrono_literals;

class IoTest : public RuntimeTest {};
WEFT_RUNTIME_TEST_SUITE(IoTest);

std::span<const std::byte> bytes(const std::string& s) { return io::as_bytes(s); }

std::string text(std::span<const std::byte> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

// read_string() reads exactly n bytes from s.
std::string read_string(io::TcpStream& s, std::size_t n) {
  std::string out(n, '\0');
  s.read_exact(std::as_writable_bytes(std::span(out)));
  return out;
}

// open_fds() counts this process's open file descriptors.
std::size_t open_fds() {
  std::size_t n = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

// threads() counts this process's threads.
std::size_t threads() {
  std::size_t n = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

// raise_fd_limit() raises the soft RLIMIT_NOFILE to the hard one; returns it.
rlim_t raise_fd_limit() {
  rlimit r{};
  ::getrlimit(RLIMIT_NOFILE, &r);
  r.rlim_cur = r.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &r);
  return r.rlim_cur;
}

// Pair is a connected loopback TCP pair.
struct Pair {
  io::TcpStream client;
  io::TcpStream server;
};

Pair connect_pair(const char* host = "127.0.0.1") {
  io::TcpListener l = io::TcpListener::bind(host, 0);
  const std::uint16_t port = l.local_endpoint().port;
  Fiber<io::TcpStream> acceptor = fork([&] { return l.accept(); });
  io::TcpStream c = io::TcpStream::connect(host, port);
  return Pair{std::move(c), acceptor.join()};
}

TEST_P(IoTest, test_io_pipe_reader_parks_until_data) {
  Exit<std::string> e = run([] {
    auto [r, w] = io::pipe();
    Fiber<std::string> reader = fork([&] {
      std::byte buf[16];
      const std::size_t n = io::read_some(r.get(), buf);
      return text(std::span(buf, n));
    });
    test::wait_parked(reader);
    EXPECT_FALSE(reader.done());
    EXPECT_EQ(io::write_some(w.get(), bytes("hello")), 5u);
    return reader.join();
  });
  ASSERT_TRUE(e.ok()) << e;
  EXPECT_EQ(e.value(), "hello");
}

TEST_P(IoTest, test_io_pipe_end_of_stream_reads_zero) {
  Exit<std::size_t> e = run([] {
    auto [r, w] = io::pipe();
    Fiber<std::size_t> reader = fork([&] {
      std::byte buf[4];
      return io::read_some(r.get(), buf);
    });
    test::wait_parked(reader);
    w.close();
    return reader.join();
  });
  ASSERT_TRUE(e.ok()) << e;
  EXPECT_EQ(e.value(), 0u);
}

TEST_P(IoTest, test_io_writer_parks_on_a_full_pipe_until_read) {
  Exit<std::size_t> e = run([] {
    auto [r, w] = io::pipe();
    std::vector<std::byte> chunk(64 * 1024);
    // Fill the pipe: write_some parks once it is full, so fill raw.
    while (::write(w.get(), chunk.data(), chunk.size()) > 0) {
    }
    Fiber<std::size_t> writer = fork([&] { return io::write_some(w.get(), bytes("x")); });
    test::wait_parked(writer);
    EXPECT_FALSE(writer.done());
    std::size_t drained = 0;
    while (!writer.done()) {
      std::byte buf[4096];
      const ssize_t n = ::read(r.get(), buf, sizeof buf);
      if (n > 0) drained += static_cast<std::size_t>(n);
      this_fiber::yield();
    }
    EXPECT_GT(drained, 0u);
    return writer.join();
  });
  ASSERT_TRUE(e.ok()) << e;
  EXPECT_EQ(e.value(), 1u);
}

TEST_P(IoTest, test_io_tcp_echo_and_endpoints) {
  Exit<void> e = run([] {
    io::TcpListener l = io::TcpListener::bind("127.0.0.1", 0);
    const io::Endpoint le = l.local_endpoint();
    EXPECT_EQ(le.host, "127.0.0.1");
    EXPECT_NE(le.port, 0);
    Fiber<void> server = fork([&] {
      io::TcpStream s = l.accept();
      s.set_nodelay(true);
      std::byte buf[4096];
      for (;;) {
        const std::size_t n = s.read_some(buf);
        if (n == 0) break;
        s.write_all(std::span(buf, n));
      }
    });
    io::TcpStream c = io::TcpStream::connect("127.0.0.1", le.port);
    c.set_nodelay(true);
    EXPECT_EQ(c.peer_endpoint(), le);
    EXPECT_EQ(c.local_endpoint().host, "127.0.0.1");
    for (int i = 0; i < 100; ++i) {
      const std::string msg = "message " + std::to_string(i);
      c.write_all(bytes(msg));
      EXPECT_EQ(read_string(c, msg.size()), msg);
    }
    c.shutdown_write();
    std::byte b[1];
    EXPECT_EQ(c.read_some(b), 0u);  // the server closed after our end of stream
    server.join();
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(IoTest, test_io_tcp_over_ipv6_loopback) {
  if (::access("/proc/net/if_inet6", F_OK) != 0) GTEST_SKIP() << "no IPv6 on this machine";
  Exit<void> e = run([] {
    Pair p = connect_pair("::1");
    EXPECT_EQ(p.client.peer_endpoint().host, "::1");
    EXPECT_EQ(fmt::format("{}", p.client.peer_endpoint()).substr(0, 5), "[::1]");
    p.client.write_all(bytes("six"));
    EXPECT_EQ(read_string(p.server, 3), "six");
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(IoTest, test_io_read_exact_throws_end_of_stream) {
  Exit<void> e = run([] {
    Pair p = connect_pair();
    p.client.write_all(bytes("abc"));
    p.client.shutdown_write();
    std::byte buf[8];
    try {
      p.server.read_exact(buf);
      ADD_FAILURE() << "read_exact past the end did not throw";
    } catch (const io::EndOfStream& eos) {
      EXPECT_NE(std::string(eos.what()).find("after 3 of 8 bytes"), std::string::npos)
          << eos.what();
    }
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(IoTest, test_io_connect_refused_names_the_endpoint) {
  Exit<void> e = run([] {
    std::uint16_t port;
    {
      io::TcpListener l = io::TcpListener::bind("127.0.0.1", 0);
      port = l.local_endpoint().port;
    }
    try {
      (void)io::TcpStream::connect("127.0.0.1", port);
      ADD_FAILURE() << "connect to a closed port succeeded";
    } catch (const std::system_error& err) {
      EXPECT_EQ(err.code().value(), ECONNREFUSED);
      EXPECT_EQ(std::string(err.what()),
                fmt::format("weft::io::TcpStream::connect 127.0.0.1:{}: Connection refused", port));
    }
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(IoTest, test_io_connect_resolves_localhost) {
  Exit<void> e = run([] {
    io::TcpListener l = io::TcpListener::bind("127.0.0.1", 0);
    Fiber<io::TcpStream> acceptor = fork([&] { return l.accept(); });
    io::TcpStream c = io::TcpStream::connect("localhost", l.local_endpoint().port);
    io::TcpStream s = acceptor.join();
    c.write_all(bytes("hi"));
    EXPECT_EQ(read_string(s, 2), "hi");
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(IoTest, test_io_bad_host_is_a_clear_error) {
  Exit<void> e = run([] {
    try {
      (void)io::TcpStream::connect("no-such-host.invalid", 80);
      ADD_FAILURE() << "resolved an .invalid name";
    } catch (const std::system_error& err) {
      EXPECT_NE(
          std::string(err.what()).find("weft::io::TcpStream::connect no-such-host.invalid:80"),
          std::string::npos)
          << err.what();
    }
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(IoTest, test_io_udp_round_trip) {
  Exit<void> e = run([] {
    io::UdpSocket a = io::UdpSocket::bind("127.0.0.1", 0);
    io::UdpSocket b = io::UdpSocket::bind("127.0.0.1", 0);
    Fiber<std::string> receiver = fork([&] {
      std::byte buf[64];
      auto [n, from] = b.receive_from(buf);
      EXPECT_EQ(from, a.local_endpoint());
      return text(std::span(buf, n));
    });
    test::wait_parked(receiver);
    EXPECT_EQ(a.send_to(bytes("datagram"), b.local_endpoint()), 8u);
    EXPECT_EQ(receiver.join(), "datagram");
    EXPECT_THROW((void)a.send_to(bytes("x"), io::Endpoint{"localhost", 1}), std::invalid_argument);
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(IoTest, test_io_fd_ownership) {
  Exit<void> e = run([] {
    auto [r, w] = io::pipe();
    const int n = r.get();
    EXPECT_GE(n, 0);
    EXPECT_TRUE(static_cast<bool>(r));
    io::Fd moved = std::move(r);
    EXPECT_EQ(moved.get(), n);
    EXPECT_EQ(r.get(), -1);  // NOLINT(bugprone-use-after-move): moved-from is empty
    const int raw = moved.release();
    EXPECT_EQ(raw, n);
    EXPECT_FALSE(static_cast<bool>(moved));
    EXPECT_EQ(::fcntl(raw, F_GETFD), FD_CLOEXEC);  // still open: release() did not close
    io::Fd again(raw);
    EXPECT_NE(::fcntl(raw, F_GETFL) & O_NONBLOCK, 0);
    again.close();
    EXPECT_EQ(::fcntl(raw, F_GETFD), -1);  // closed
    again.close();                         // idempotent
    EXPECT_THROW(io::Fd(-1), std::invalid_argument);
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(IoTest, test_io_calls_on_empty_or_closed_objects_throw_ebadf) {
  Exit<void> e = run([] {
    io::TcpStream s;
    std::byte b[1];
    try {
      (void)s.read_some(b);
      ADD_FAILURE();
    } catch (const std::system_error& err) {
      EXPECT_EQ(err.code().value(), EBADF);
      EXPECT_NE(std::string(err.what()).find("TcpStream::read_some"), std::string::npos);
    }
    Pair p = connect_pair();
    p.client.close();
    EXPECT_FALSE(static_cast<bool>(p.client));
    EXPECT_THROW((void)p.client.write_some(bytes("x")), std::system_error);
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(IoTest, test_io_regular_file_is_a_clear_error) {
  Exit<void> e = run([] {
    char path[] = "/tmp/weft_io_test_XXXXXX";
    const int fd = ::mkstemp(path);
    ASSERT_GE(fd, 0);
    ::unlink(path);
    io::Fd f(fd);
    // A regular file is always ready: the wait returns at once, and an
    // epoll registration (refused for files) is never needed.
    io::wait_readable(f.get());
    std::byte b[1];
    EXPECT_EQ(io::read_some(f.get(), b), 0u);
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(IoTest, test_io_wait_until_times_out_and_wait_writable_is_immediate) {
  Exit<void> e = run([] {
    auto [r, w] = io::pipe();
    const auto start = this_fiber::now();
    EXPECT_FALSE(io::wait_readable_until(r.get(), start + 5ms));
    EXPECT_GE(this_fiber::now() - start, 5ms);
    EXPECT_TRUE(io::wait_writable_until(w.get(), this_fiber::now() + test::kForever));
    (void)io::write_some(w.get(), bytes("z"));
    EXPECT_TRUE(io::wait_readable_until(r.get(), this_fiber::now() + 5ms));
    io::wait_readable(r.get());  // still readable: nothing consumed it
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(IoTest, test_io_interrupted_reader_consumed_nothing) {
  Exit<void> e = run([] {
    Pair p = connect_pair();
    Fiber<std::size_t> reader = fork([&] {
      std::byte b[16];
      return p.server.read_some(b);
    });
    test::wait_parked(reader);
    Exit<std::size_t> ex = reader.interrupt();
    EXPECT_TRUE(ex.interrupted()) << ex;
    p.client.write_all(bytes("intact"));
    EXPECT_EQ(read_string(p.server, 6), "intact");
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(IoTest, test_io_timeout_on_read_returns_nullopt_and_stream_stays_usable) {
  Exit<void> e = run([] {
    Pair p = connect_pair();
    std::byte b[16];
    std::optional<std::size_t> r = timeout(10ms, [&] { return p.server.read_some(b); });
    EXPECT_FALSE(r.has_value());
    p.client.write_all(bytes("later"));
    r = timeout(std::chrono::seconds(30), [&] { return p.server.read_some(b); });
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(text(std::span(b, *r)), "later");
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(IoTest, test_io_pending_interrupt_on_entry_moves_nothing) {
  Exit<void> e = run([] {
    Pair p = connect_pair();
    p.client.write_all(bytes("kept"));
    Deferred<void> masked;
    Fiber<void> f = fork([&] {
      {
        Uninterruptible m;
        masked.succeed();
        test::yield_until([] { return this_fiber::interrupt_requested(); });
      }
      std::byte b[4];
      (void)p.server.read_some(b);  // must throw before reading
      ADD_FAILURE() << "read_some with an interrupt pending returned";
    });
    masked.await();
    Exit<void> ex = f.interrupt();
    EXPECT_TRUE(ex.interrupted()) << ex;
    EXPECT_EQ(read_string(p.server, 4), "kept");
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(IoTest, test_io_close_wakes_parked_reader_and_writer_with_ebadf) {
  Exit<void> e = run([] {
    Pair p = connect_pair();
    auto [r, w] = io::pipe();
    std::vector<std::byte> chunk(64 * 1024);
    while (::write(w.get(), chunk.data(), chunk.size()) > 0) {
    }
    auto expect_ebadf = [](auto&& call) {
      try {
        call();
        ADD_FAILURE() << "a waiter woken by close() returned";
      } catch (const std::system_error& err) {
        EXPECT_EQ(err.code().value(), EBADF) << err.what();
        EXPECT_NE(std::string(err.what()).find("closed by weft::io::Fd::close"), std::string::npos)
            << err.what();
      }
    };
    Fiber<void> reader = fork([&] {
      std::byte b[4];
      expect_ebadf([&] { (void)p.server.read_some(b); });
    });
    Fiber<void> writer = fork([&] { expect_ebadf([&] { (void)io::write_some(w.get(), chunk); }); });
    test::wait_parked(reader);
    test::wait_parked(writer);
    p.server.close();
    w.close();
    reader.join();
    writer.join();
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(IoTest, test_io_interrupted_accept_takes_no_connection) {
  Exit<void> e = run([] {
    io::TcpListener l = io::TcpListener::bind("127.0.0.1", 0);
    Fiber<io::TcpStream> first = fork([&] { return l.accept(); });
    test::wait_parked(first);
    EXPECT_TRUE(first.interrupt().interrupted());
    io::TcpStream c = io::TcpStream::connect("127.0.0.1", l.local_endpoint().port);
    io::TcpStream s = l.accept();  // the connection is still in the backlog
    c.write_all(bytes("ok"));
    EXPECT_EQ(read_string(s, 2), "ok");
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(IoTest, test_io_interrupted_connect_leaves_no_socket) {
  Exit<void> e = run([] {
    // A listener whose accept queue is full drops SYNs: a connect to it
    // stays in progress, parked. Fill the queue until a connect parks.
    io::TcpListener l = io::TcpListener::bind("127.0.0.1", 0, 0);
    const std::uint16_t port = l.local_endpoint().port;
    // Park once so the runtime's reactor (an epoll fd and an eventfd) exists
    // before the fds are counted.
    EXPECT_FALSE(io::wait_readable_until(l.native_handle(), this_fiber::now() + 1ms));
    std::vector<io::TcpStream> queued;
    for (int i = 0; i < 16; ++i) {
      const std::size_t fds_before = open_fds();
      Fiber<io::TcpStream> c = fork([&] { return io::TcpStream::connect("127.0.0.1", port); });
      test::wait_parked(c);
      if (c.done()) {
        queued.push_back(c.join());
        continue;
      }
      Exit<io::TcpStream> ex = c.interrupt();
      EXPECT_TRUE(ex.interrupted()) << ex;
      EXPECT_EQ(open_fds(), fds_before);  // the half-open socket was closed
      return;
    }
    ADD_FAILURE() << "no connect parked against a full accept queue";
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(IoTest, test_io_readiness_wakes_every_waiter_and_each_retries) {
  Exit<void> e = run([] {
    auto [r, w] = io::pipe();
    constexpr int kReaders = 5;
    std::atomic<int> got{0};
    std::vector<Fiber<void>> readers;
    for (int i = 0; i < kReaders; ++i)
      readers.push_back(fork([&] {
        std::byte b[1];
        got += static_cast<int>(io::read_some(r.get(), b));
      }));
    for (auto& f : readers) test::wait_parked(f);
    // One byte at a time: every write wakes all parked readers, one gets it,
    // the others find EAGAIN and park again. No byte is read twice or lost.
    for (int i = 0; i < kReaders; ++i) {
      (void)io::write_some(w.get(), bytes("b"));
      test::yield_until([&] { return got.load() == i + 1; });
    }
    for (auto& f : readers) f.join();
    EXPECT_EQ(got.load(), kReaders);
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(IoTest, test_io_many_parked_readers_need_no_threads) {
  const rlim_t limit = raise_fd_limit();
  // 2,000 readers (500 under a sanitizer: TSan's shadow of 2,000 fiber
  // stacks alone peaks at 1.8 GB).
  const std::size_t n = std::min<std::size_t>(test::scaled(2000, 500), (limit - 200) / 2);
  Exit<void> e = run([n] {
    const std::size_t threads_before = threads();
    std::vector<std::pair<io::Fd, io::Fd>> pipes;
    pipes.reserve(n);
    for (std::size_t i = 0; i < n; ++i) pipes.push_back(io::pipe());
    std::atomic<std::size_t> done{0};
    Scope scope;
    std::vector<Fiber<void>> readers;
    for (std::size_t i = 0; i < n; ++i)
      readers.push_back(scope.fork([&, i] {
        std::byte b[1];
        done += io::read_some(pipes[i].first.get(), b);
      }));
    for (auto& f : readers) test::wait_parked(f);
    EXPECT_LE(threads(), threads_before + 1);  // + the reactor needs none; slack for a helper
    for (auto& p : pipes) (void)io::write_some(p.second.get(), bytes("x"));
    scope.join();
    EXPECT_EQ(done.load(), n);
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST(IoPlainThread, test_io_plain_thread_blocks_and_times_out) {
  auto [r, w] = io::pipe();
  EXPECT_FALSE(io::wait_readable_until(r.get(), std::chrono::steady_clock::now() + 5ms));
  std::latch started(1);
  std::thread writer([&, fd = w.get()] {
    started.count_down();
    (void)io::write_some(fd, io::as_bytes("plain"));
  });
  started.wait();
  std::byte b[8];
  std::size_t got = 0;
  while (got < 5) got += io::read_some(r.get(), std::span(b).subspan(got));
  writer.join();
  EXPECT_EQ(text(std::span(b, got)), "plain");
}

TEST(IoPlainThread, test_io_tcp_from_plain_threads_and_fibers) {
  io::TcpListener l = io::TcpListener::bind("127.0.0.1", 0);
  Runtime rt(RuntimeOptions{.workers = 2});
  Fiber<void> server = rt.spawn([&] {
    io::TcpStream s = l.accept();
    std::byte b[5];
    s.read_exact(b);
    s.write_all(b);
  });
  io::TcpStream c = io::TcpStream::connect("127.0.0.1", l.local_endpoint().port);
  c.write_all(io::as_bytes("hello"));
  std::byte b[5];
  c.read_exact(b);
  EXPECT_EQ(text(b), "hello");
  server.join();
}

TEST(IoEndpoint, test_io_endpoint_formats) {
  EXPECT_EQ(fmt::format("{}", io::Endpoint{"127.0.0.1", 80}), "127.0.0.1:80");
  EXPECT_EQ(fmt::format("{}", io::Endpoint{"::1", 80}), "[::1]:80");
}

}  // namespace
}  // namespace weft
