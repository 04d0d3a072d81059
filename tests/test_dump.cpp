// Runtime::dump(): the fiber tree with states, what each fiber waits on and
// the line it waits at, Mutex holders, pending interrupters, and collapsed
// lines for many fibers waiting at one site (DESIGN §5, docs/debugging.md).
#include <weft/weft.hpp>

#include <gtest/gtest.h>

#include "support/scale.hpp"
#include "support/weft_test.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <string>
#include <vector>

namespace weft {
namespace {

using namespace std::chrono_literals;

class DumpTest : public test::RuntimeTest {};

// contains() with the dump in the failure message.
::testing::AssertionResult has(const std::string& dump, const std::string& text) {
  if (dump.find(text) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "no \"" << text << "\" in:\n" << dump;
}

std::string site(const std::atomic<int>& line) {
  return "at test_dump.cpp:" + std::to_string(line.load());
}

TEST_P(DumpTest, test_dump_names_the_line_each_fiber_waits_at) {
  Exit<void> e = run([&] {
    Channel<int> ch(1);
    Deferred<void> never;
    std::atomic<int> receive_line{0};
    std::atomic<int> sleep_line{0};
    Fiber<void> receiver = fork(
        [&] {
          receive_line = __LINE__ + 1;
          (void)ch.receive();
        },
        {"receiver"});
    Fiber<void> sleeper = fork(
        [&] {
          sleep_line = __LINE__ + 1;
          this_fiber::sleep_for(test::kForever);
        },
        {"sleeper"});
    test::wait_parked(receiver);
    test::wait_parked(sleeper);
    const std::string d = rt().dump();
    EXPECT_TRUE(has(d, fmt::format("fiber {} 'receiver' parked in Channel::receive on {}",
                                   receiver.id(), static_cast<const void*>(&ch))));
    EXPECT_TRUE(has(d, site(receive_line)));
    EXPECT_TRUE(has(d, fmt::format("fiber {} 'sleeper' parked in sleep", sleeper.id())));
    EXPECT_TRUE(has(d, site(sleep_line)));
    // The parent is running (it is the one dumping) and the children are
    // indented under it.
    EXPECT_TRUE(has(d, fmt::format("fiber {} '' running", this_fiber::id())));
    EXPECT_TRUE(has(d, "\n    fiber"));
    receiver.interrupt_fork();
    sleeper.interrupt_fork();
  });
  EXPECT_TRUE(e.ok()) << e;
}

// An AB/BA deadlock: the dump shows both waiters AND who holds each Mutex.
TEST_P(DumpTest, test_dump_names_the_holder_of_a_mutex) {
  Exit<void> e = run([&] {
    Mutex a;
    Mutex b;
    Latch both_locked(2);
    Fiber<void> first = fork(
        [&] {
          std::lock_guard la(a);
          both_locked.arrive_and_wait();
          std::lock_guard lb(b);
        },
        {"first"});
    Fiber<void> second = fork(
        [&] {
          std::lock_guard lb(b);
          both_locked.arrive_and_wait();
          std::lock_guard la(a);
        },
        {"second"});
    test::yield_until([&] { return a.waiters() == 1 && b.waiters() == 1; });
    // Parked, not only counted on the Mutex: a waiter is counted before it
    // records what it waits on (the dump once showed 'second' as "parked"
    // with no Mutex, in the instant between the two, at 4 workers).
    test::wait_parked(first);
    test::wait_parked(second);
    const std::string d = rt().dump();
    EXPECT_TRUE(has(d, fmt::format("'first' parked in Mutex::lock on {}, held by fiber {} 'second'",
                                   static_cast<const void*>(&b), second.id())));
    EXPECT_TRUE(has(d, fmt::format("'second' parked in Mutex::lock on {}, held by fiber {} 'first'",
                                   static_cast<const void*>(&a), first.id())));
    EXPECT_TRUE(has(d, fmt::format("holds Mutex {}", static_cast<const void*>(&a))));
    // Locked through std::lock_guard: the site is the caller's last line
    // (arrive_and_wait), not the standard header's.
    EXPECT_EQ(d.find("std_mutex.h"), std::string::npos) << d;
    EXPECT_TRUE(has(d, "at test_dump.cpp:"));
    // Break it: interrupting `first` unlocks `a` as it unwinds.
    EXPECT_TRUE(first.interrupt().interrupted());
    second.join();
  });
  EXPECT_TRUE(e.ok()) << e;
}

// Many fibers waiting at one site collapse into one line with a count.
TEST_P(DumpTest, test_dump_collapses_fibers_waiting_at_one_site) {
  // 1,000 parked fibers; 300 under a sanitizer (TSan's shadow of 1,000
  // stacks took ~950 MB for the whole binary).
  constexpr int kWaiters = static_cast<int>(test::scaled(1000, 300));
  Exit<void> e = run([&] {
    Deferred<void> gate;
    Scope scope;
    std::atomic<int> line{0};
    std::vector<Fiber<void>> conns;
    for (int i = 0; i < kWaiters; ++i)
      conns.push_back(scope.fork(
          [&] {
            line = __LINE__ + 1;
            gate.await();
          },
          {"conn"}));
    // Parked, not only queued on the gate: a waiter is linked before it has
    // switched out, and the dump groups parked fibers (a waiter still parking
    // on the other worker was once missing from the line).
    for (const Fiber<void>& c : conns) test::wait_parked(c);
    EXPECT_EQ(gate.waiters(), static_cast<std::size_t>(kWaiters));
    const std::string d = rt().dump();
    EXPECT_TRUE(has(d, fmt::format("{} fibers (", kWaiters)));
    EXPECT_TRUE(has(d, "'conn' parked in Deferred::await on"));
    EXPECT_TRUE(has(d, site(line) + ", the longest for"));
    // One line for all of them, not one per fiber.
    EXPECT_LT(d.size(), 2000u) << d;
    gate.succeed();
    scope.join();
  });
  EXPECT_TRUE(e.ok()) << e;
}

// Masked waits and pending interrupters are shown.
TEST_P(DumpTest, test_dump_shows_masked_waits_and_pending_interrupters) {
  Exit<void> e = run([&] {
    Deferred<void> gate;
    Fiber<void> masked = fork(
        [&] {
          Uninterruptible mask;
          gate.await();
        },
        {"masked"});
    test::wait_parked(masked);
    masked.interrupt_fork();
    const std::string d = rt().dump();
    EXPECT_TRUE(has(d, "'masked' parked in Deferred::await on"));
    EXPECT_TRUE(has(d, "(masked)"));
    EXPECT_TRUE(has(d, fmt::format("interrupt pending from {}", this_fiber::id())));
    gate.succeed();
    EXPECT_TRUE(masked.await().interrupted());
  });
  EXPECT_TRUE(e.ok()) << e;
}

// I/O waits and joins record the caller's line too.
TEST_P(DumpTest, test_dump_names_io_and_join_call_sites) {
  Exit<void> e = run([&] {
    auto [r, w] = io::pipe();
    std::byte buf[1];
    std::atomic<int> read_line{0};
    std::atomic<int> join_line{0};
    Fiber<void> reader = fork(
        [&] {
          read_line = __LINE__ + 1;
          (void)io::read_some(r.get(), buf);
        },
        {"reader"});
    Fiber<void> joiner = fork(
        [&] {
          join_line = __LINE__ + 1;
          reader.join();
        },
        {"joiner"});
    test::wait_parked(reader);
    test::wait_parked(joiner);
    const std::string d = rt().dump();
    EXPECT_TRUE(has(d, "'reader' parked in weft::io::read_some"));
    EXPECT_TRUE(has(d, site(read_line)));
    EXPECT_TRUE(has(d, fmt::format("'joiner' parked in Fiber::join on {}",
                                   static_cast<const void*>(&detail::core_of(reader)))));
    EXPECT_TRUE(has(d, site(join_line)));
    reader.interrupt_fork();
    (void)joiner.await();
  });
  EXPECT_TRUE(e.ok()) << e;
}

// RuntimeOptions::dump_signal: the signal writes the dump to stderr (from
// a thread the handler wakes).
TEST(DumpSignal, test_dump_signal_writes_the_dump_to_stderr) {
  RuntimeOptions o;
  o.workers = 1;
  o.dump_signal = SIGUSR1;
  Runtime rt(o);
  Deferred<void> gate;
  std::atomic<int> line{0};
  Fiber<void> waiter = rt.spawn(
      [&] {
        line = __LINE__ + 1;
        gate.await();
      },
      {"signalled"});
  while (gate.waiters() == 0) std::this_thread::yield();
  // Capture fd 2 in a pipe while the signal is handled.
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  const int saved = ::dup(STDERR_FILENO);
  ASSERT_GE(saved, 0);
  ASSERT_EQ(::dup2(fds[1], STDERR_FILENO), STDERR_FILENO);
  ::close(fds[1]);
  ASSERT_EQ(::raise(SIGUSR1), 0);
  std::string out;
  const std::string want = site(line);
  // Read until the dump's line for the waiter arrived (bounded: 30 s).
  while (out.find(want) == std::string::npos) {
    pollfd p{fds[0], POLLIN, 0};
    if (::poll(&p, 1, 30'000) <= 0) break;
    char chunk[4096];
    const ssize_t n = ::read(fds[0], chunk, sizeof chunk);
    if (n <= 0) break;
    out.append(chunk, static_cast<std::size_t>(n));
  }
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  ::close(fds[0]);
  EXPECT_TRUE(has(out, "'signalled' parked in Deferred::await"));
  EXPECT_TRUE(has(out, want));
  gate.succeed();
  EXPECT_TRUE(waiter.await().ok());
}

TEST(DumpSignal, test_dump_signal_rejects_a_signal_that_cannot_be_caught) {
  RuntimeOptions o;
  o.workers = 1;
  o.dump_signal = SIGKILL;
  try {
    Runtime rt(o);
    FAIL() << "SIGKILL accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("dump_signal = 9"), std::string::npos) << e.what();
  }
}

WEFT_RUNTIME_TEST_SUITE(DumpTest);

}  // namespace
}  // namespace weft
