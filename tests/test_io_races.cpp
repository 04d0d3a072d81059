// The races of I/O waits (DESIGN 3.13), each forced both ways where an
// order can be forced, then run free many times with the invariant that
// decides it: a byte is read exactly once (never lost, never twice), a
// waiter always ends, close() never hangs. Readiness, a deadline, an
// interrupter and close() end a wait through the one wait word.
#include "support/scale.hpp"
#include "support/weft_test.hpp"

#include <weft/io.hpp>
#include <weft/weft.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <system_error>
#include <vector>

namespace weft {
namespace {

using test::RuntimeTest;
using namespace std::chrono_literals;

class IoRaceTest : public RuntimeTest {};
WEFT_RUNTIME_TEST_SUITE(IoRaceTest);

const std::uint64_t kRounds = test::scaled(300, 60);

// drain() reads what is left in a non-blocking fd without parking.
std::size_t drain(int fd) {
  std::size_t n = 0;
  std::byte buf[4096];
  for (;;) {
    const ssize_t r = ::read(fd, buf, sizeof buf);
    if (r <= 0) return n;
    n += static_cast<std::size_t>(r);
  }
}

// Reader: read one byte, record it, then park until interrupted (where an
// interrupt that lost the race to readiness is delivered), so its Exit is
// always interrupted and `got` says whether the read won.
struct Reader {
  std::atomic<std::size_t> got{0};
  Deferred<void> never;
  Fiber<void> start(int fd) {
    return fork([this, fd] {
      std::byte b[1];
      got = io::read_some(fd, b);
      never.await();
    });
  }
};

TEST_P(IoRaceTest, test_io_race_readiness_first_then_interrupt_keeps_the_byte_read) {
  Exit<void> e = run([] {
    auto [r, w] = io::pipe();
    Reader reader;
    Fiber<void> f = reader.start(r.get());
    test::wait_parked(f);
    (void)io::write_some(w.get(), io::as_bytes("x"));
    // Readiness claims the wait (a poller, or the monitor, delivers it):
    // wait until the reader left the wait (it may be between the claim and
    // its resumption, or have read and parked on `never`), then interrupt.
    test::yield_until([&] { return !test::parked(detail::core_of(f)) || reader.got.load() == 1; });
    Exit<void> ex = f.interrupt();
    EXPECT_TRUE(ex.interrupted()) << ex;  // at the yield after the read
    EXPECT_EQ(reader.got.load(), 1u);
    EXPECT_EQ(drain(r.get()), 0u);
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(IoRaceTest, test_io_race_interrupt_first_then_readiness_leaves_the_byte) {
  Exit<void> e = run([] {
    auto [r, w] = io::pipe();
    Reader reader;
    Fiber<void> f = reader.start(r.get());
    test::wait_parked(f);
    f.interrupt_fork();  // claims the wait synchronously
    (void)io::write_some(w.get(), io::as_bytes("x"));
    Exit<void> ex = f.await();
    EXPECT_TRUE(ex.interrupted()) << ex;
    EXPECT_EQ(reader.got.load(), 0u);
    EXPECT_EQ(drain(r.get()), 1u);
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(IoRaceTest, test_io_race_interrupt_vs_readiness_free) {
  Exit<void> e = run([] {
    int woken_first = 0;
    for (std::uint64_t i = 0; i < kRounds; ++i) {
      auto [r, w] = io::pipe();
      Reader reader;
      Fiber<void> f = reader.start(r.get());
      test::wait_parked(f);
      Deferred<void> go;
      Fiber<void> writer = fork([&, fd = w.get()] {
        go.await();
        (void)io::write_some(fd, io::as_bytes("x"));
      });
      Fiber<void> interrupter = fork([&] {
        go.await();
        f.interrupt_fork();
      });
      go.succeed();
      writer.join();
      interrupter.join();
      Exit<void> ex = f.await();
      EXPECT_TRUE(ex.interrupted()) << ex;
      const std::size_t left = drain(r.get());
      ASSERT_EQ(reader.got.load() + left, 1u) << "round " << i;  // read once, never lost
      woken_first += static_cast<int>(reader.got.load());
    }
    RecordProperty("readiness_won", woken_first);
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(IoRaceTest, test_io_race_interrupted_writer_sent_nothing) {
  Exit<void> e = run([] {
    auto [r, w] = io::pipe();
    std::vector<std::byte> chunk(4096);
    std::size_t filled = 0;
    for (;;) {
      const ssize_t n = ::write(w.get(), chunk.data(), chunk.size());
      if (n <= 0) break;
      filled += static_cast<std::size_t>(n);
    }
    Fiber<std::size_t> writer = fork([&] { return io::write_some(w.get(), chunk); });
    test::wait_parked(writer);
    EXPECT_TRUE(writer.interrupt().interrupted());
    EXPECT_EQ(drain(r.get()), filled);  // not one byte of the interrupted write
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(IoRaceTest, test_io_race_interrupt_vs_close_free) {
  Exit<void> e = run([] {
    int closed_first = 0;
    for (std::uint64_t i = 0; i < kRounds; ++i) {
      auto [r, w] = io::pipe();
      std::atomic<int> outcome{0};  // 1 interrupted, 2 EBADF
      Fiber<void> reader = fork([&] {
        std::byte b[1];
        try {
          (void)io::read_some(r.get(), b);
        } catch (const Interrupted&) {
          outcome = 1;
          throw;
        } catch (const std::system_error& err) {
          EXPECT_EQ(err.code().value(), EBADF);
          outcome = 2;
        }
      });
      test::wait_parked(reader);
      Deferred<void> go;
      Fiber<void> closer = fork([&] {
        go.await();
        r.close();
      });
      Fiber<void> interrupter = fork([&] {
        go.await();
        reader.interrupt_fork();
      });
      go.succeed();
      closer.join();
      interrupter.join();
      (void)reader.await();  // it ends, one way or the other
      ASSERT_NE(outcome.load(), 0) << "round " << i;
      closed_first += outcome.load() == 2 ? 1 : 0;
    }
    RecordProperty("close_won", closed_first);
  });
  EXPECT_TRUE(e.ok()) << e;
}

// socket_pair() is a connected AF_UNIX stream pair: a write after the
// peer's close is EPIPE (send with MSG_NOSIGNAL), where a pipe would raise
// SIGPIPE (POSIX; weft does not change the process's signal disposition).
std::pair<io::Fd, io::Fd> socket_pair() {
  int sv[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
  return {io::Fd(sv[0]), io::Fd(sv[1])};
}

TEST_P(IoRaceTest, test_io_race_close_vs_readiness_free) {
  Exit<void> e = run([] {
    for (std::uint64_t i = 0; i < kRounds; ++i) {
      auto [r, w] = socket_pair();
      std::atomic<int> outcome{0};  // 1 read the byte, 2 EBADF
      Fiber<void> reader = fork([&] {
        std::byte b[1];
        try {
          if (io::read_some(r.get(), b) == 1) outcome = 1;
        } catch (const std::system_error& err) {
          EXPECT_EQ(err.code().value(), EBADF);
          outcome = 2;
        }
      });
      test::wait_parked(reader);
      Deferred<void> go;
      Fiber<void> writer = fork([&, fd = w.get()] {
        go.await();
        try {
          (void)io::write_some(fd, io::as_bytes("x"));
        } catch (const std::system_error& err) {
          EXPECT_EQ(err.code().value(), EPIPE);  // the reader's end closed first
        }
      });
      Fiber<void> closer = fork([&] {
        go.await();
        r.close();
      });
      go.succeed();
      writer.join();
      closer.join();
      reader.join();
      ASSERT_NE(outcome.load(), 0) << "round " << i;
    }
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(IoRaceTest, test_io_race_timeout_vs_data_at_the_deadline) {
  Exit<void> e = run([] {
    io::TcpListener l = io::TcpListener::bind("127.0.0.1", 0);
    Fiber<io::TcpStream> acceptor = fork([&] { return l.accept(); });
    io::TcpStream client = io::TcpStream::connect("127.0.0.1", l.local_endpoint().port);
    io::TcpStream server = acceptor.join();
    int timed_out = 0;
    const std::uint64_t rounds = test::scaled(200, 40);
    for (std::uint64_t i = 0; i < rounds; ++i) {
      const auto deadline = this_fiber::now() + 1ms;
      // The byte is sent at the reader's deadline: the timer and the
      // readiness race for the wait.
      Fiber<void> writer = fork([&] {
        this_fiber::sleep_until(deadline);
        client.write_all(io::as_bytes("d"));
      });
      std::byte b[1];
      std::optional<std::size_t> got = timeout(1ms, [&] { return server.read_some(b); });
      writer.join();
      if (!got) {
        ++timed_out;
        // A timed-out read consumed nothing: the byte is still there.
        got = timeout(std::chrono::seconds(30), [&] { return server.read_some(b); });
        ASSERT_TRUE(got.has_value()) << "round " << i << ": the byte was lost";
      }
      ASSERT_EQ(*got, 1u) << "round " << i;
      ASSERT_EQ(b[0], std::byte{'d'});
    }
    RecordProperty("timed_out", timed_out);
  });
  EXPECT_TRUE(e.ok()) << e;
}

TEST_P(IoRaceTest, test_io_race_two_interrupters_one_reader) {
  Exit<void> e = run([] {
    for (std::uint64_t i = 0; i < kRounds / 3; ++i) {
      auto [r, w] = io::pipe();
      Reader reader;
      Fiber<void> f = reader.start(r.get());
      test::wait_parked(f);
      Deferred<void> go;
      std::vector<Fiber<void>> interrupters;
      for (int k = 0; k < 2; ++k)
        interrupters.push_back(fork([&] {
          go.await();
          EXPECT_TRUE(f.interrupt().interrupted());
        }));
      go.succeed();
      for (auto& x : interrupters) x.join();
      (void)io::write_some(w.get(), io::as_bytes("x"));
      EXPECT_EQ(reader.got.load(), 0u);
      ASSERT_EQ(drain(r.get()), 1u) << "round " << i;
    }
  });
  EXPECT_TRUE(e.ok()) << e;
}

}  // namespace
}  // namespace weft
