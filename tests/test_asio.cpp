// The Asio bridge (weft/asio.hpp): results and errors of Asio operations
// called with use_fiber, the interrupt protocol (cancel on the operation's
// executor, wait for the handler, then Interrupted or the result), plain
// threads, and operations dropped with their io_context.
#include <weft/asio.hpp>

#include "support/weft_test.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <latch>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace weft {
namespace {

using namespace std::chrono_literals;
using boost::asio::ip::tcp;
using boost::system::error_code;
using test::Boom;
using test::RuntimeTest;
using test::wait_parked;
using weft::asio::IoContext;
using weft::asio::use_fiber;
using weft::asio::use_fiber_t;

class AsioTest : public RuntimeTest {};
WEFT_RUNTIME_TEST_SUITE(AsioTest);

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// tcp_pair() is a connected pair of loopback sockets, made with synchronous
// calls on the calling (plain) thread.
std::pair<tcp::socket, tcp::socket> tcp_pair(boost::asio::io_context& io) {
  tcp::acceptor acceptor(io, {boost::asio::ip::address_v4::loopback(), 0});
  tcp::socket client(io);
  tcp::socket server(io);
  client.connect(acceptor.local_endpoint());
  acceptor.accept(server);
  return {std::move(client), std::move(server)};
}

// CountedWait is timer.async_wait whose handler counts its runs and keeps
// its error code, so a test sees when the operation's handler ran. It passes
// use_fiber's cancellation slot on to the timer's wait.
struct CountedWait {
  using executor_type = boost::asio::steady_timer::executor_type;
  boost::asio::steady_timer* timer;
  std::atomic<int>* handled;
  error_code* result;

  executor_type get_executor() const noexcept { return timer->get_executor(); }
  template <class Handler>
  void operator()(Handler&& handler) const {
    auto slot = boost::asio::get_associated_cancellation_slot(handler);
    timer->async_wait(boost::asio::bind_cancellation_slot(
        slot, [h = std::forward<Handler>(handler), handled = handled,
               result = result](error_code ec) mutable {
          *result = ec;
          handled->fetch_add(1);
          std::move(h)(ec);
        }));
  }
};

// PostValues completes on `ex` with the given arguments (any signature).
template <class... Vs>
struct PostValues {
  using executor_type = IoContext::executor_type;
  executor_type ex;
  std::tuple<Vs...> values;

  executor_type get_executor() const noexcept { return ex; }
  template <class Handler>
  void operator()(Handler&& handler) {
    boost::asio::post(ex, [h = std::forward<Handler>(handler), v = std::move(values)]() mutable {
      std::apply([&](auto&&... vs) { std::move(h)(std::move(vs)...); }, std::move(v));
    });
  }
};

// complete_with() runs an operation of signature Sig that completes with vs.
template <class Sig, class... Vs>
auto complete_with(IoContext& io, Vs... vs) {
  return boost::asio::async_initiate<const use_fiber_t&, Sig>(
      PostValues<Vs...>{io.get_executor(), {std::move(vs)...}}, use_fiber);
}

TEST_P(AsioTest, test_asio_timer_wait_returns_after_expiry) {
  IoContext io;
  Exit<bool> e = run([&] {
    boost::asio::steady_timer timer(io.get(), 5ms);
    timer.async_wait(use_fiber);
    return std::chrono::steady_clock::now() >= timer.expiry();
  });
  EXPECT_TRUE(e.value());
}

TEST_P(AsioTest, test_asio_error_code_becomes_system_error) {
  IoContext io;
  tcp::endpoint closed;
  {
    tcp::acceptor acceptor(io.get(), {boost::asio::ip::address_v4::loopback(), 0});
    closed = acceptor.local_endpoint();
  }  // closed: nobody listens on that port any more
  Exit<void> e = run([&] {
    tcp::socket sock(io.get());
    sock.async_connect(closed, use_fiber);
  });
  ASSERT_TRUE(e.failed());
  const auto* err = e.cause().failure<boost::system::system_error>();
  ASSERT_NE(err, nullptr) << e.cause().pretty();
  EXPECT_EQ(err->code(), boost::asio::error::connection_refused);
}

TEST_P(AsioTest, test_asio_interrupt_cancels_wait_and_handler_runs_before_finalizers) {
  for (unsigned io_threads : {1u, 2u}) {
    IoContext io(io_threads);
    // Long enough that a wait that is not cancelled fails the test below.
    boost::asio::steady_timer timer(io.get(), 30s);
    std::atomic<int> handled{0};
    error_code handler_ec;
    int handled_in_finalizer = -1;
    Exit<bool> e = run([&] {
      Fiber<void> waiter = fork([&] {
        OnExit fin([&] { handled_in_finalizer = handled.load(); });
        boost::asio::async_initiate<const use_fiber_t&, void(error_code)>(
            CountedWait{&timer, &handled, &handler_ec}, use_fiber);
        ADD_FAILURE() << "the wait returned instead of throwing Interrupted";
      });
      wait_parked(waiter);
      EXPECT_EQ(handled.load(), 0);  // parked on a pending wait
      const auto started = std::chrono::steady_clock::now();
      Exit<void> x = waiter.interrupt();
      // Prompt: the wait was cancelled, not waited out.
      EXPECT_LT(std::chrono::steady_clock::now() - started, 15s);
      return x.interrupted();
    });
    EXPECT_TRUE(e.value()) << "io threads " << io_threads;
    EXPECT_EQ(handled_in_finalizer, 1) << "the handler must run before the finalizers";
    EXPECT_EQ(handled.load(), 1);
    EXPECT_EQ(handler_ec, boost::asio::error::operation_aborted);
  }
}

TEST_P(AsioTest, test_asio_timeout_on_read_leaves_socket_usable) {
  IoContext io;
  auto sockets = tcp_pair(io.get());
  tcp::socket& a = sockets.first;  // (a lambda may not capture a structured binding in clang 14)
  tcp::socket& b = sockets.second;
  Exit<std::string> e = run([&] {
    std::array<char, 16> buf{};
    std::optional<std::size_t> some =
        timeout(20ms, [&] { return a.async_read_some(boost::asio::buffer(buf), use_fiber); });
    EXPECT_FALSE(some.has_value());
    // A composed operation (async_read loops on async_read_some) too.
    std::optional<std::size_t> exact = timeout(
        20ms, [&] { return boost::asio::async_read(a, boost::asio::buffer(buf, 5), use_fiber); });
    EXPECT_FALSE(exact.has_value());
    // A wrapper token that hides the executor: emitted on the fiber's thread,
    // safe for a socket's own operation.
    error_code ec;
    std::optional<std::size_t> redirected = timeout(20ms, [&] {
      return a.async_read_some(boost::asio::buffer(buf),
                               boost::asio::redirect_error(use_fiber, ec));
    });
    EXPECT_FALSE(redirected.has_value());
    const std::string hello = "hello";
    EXPECT_EQ(boost::asio::async_write(b, boost::asio::buffer(hello), use_fiber), 5u);
    const std::size_t n = boost::asio::async_read(a, boost::asio::buffer(buf, 5), use_fiber);
    return std::string(buf.data(), n);
  });
  EXPECT_EQ(e.value(), "hello");
}

// CompleteThenInterrupt completes the operation on the io thread and only
// then interrupts the calling fiber, before that fiber reaches its wait: the
// interrupt finds the operation already completed.
struct CompleteThenInterrupt {
  using executor_type = IoContext::executor_type;
  executor_type ex;
  Fiber<void>* target;

  executor_type get_executor() const noexcept { return ex; }
  template <class Handler>
  void operator()(Handler&& handler) const {
    std::latch done(1);
    boost::asio::post(ex, [h = std::forward<Handler>(handler), target = target, &done]() mutable {
      std::move(h)(error_code{}, 42);  // the operation completes...
      target->interrupt_fork();        // ...then the interrupt arrives
      done.count_down();
    });
    done.wait();  // blocks this worker until both happened (the io thread does not need it)
  }
};

TEST_P(AsioTest, test_asio_completed_before_interrupt_returns_value_then_interrupts) {
  IoContext io;
  int got = 0;
  bool after_yield = false;
  Exit<bool> e = run([&] {
    Fiber<void>* self = nullptr;
    Deferred<void> handle_set;
    Fiber<void> f = fork([&] {
      handle_set.await();
      got = boost::asio::async_initiate<const use_fiber_t&, void(error_code, int)>(
          CompleteThenInterrupt{io.get_executor(), self}, use_fiber);
      this_fiber::yield();  // the pending interrupt is delivered here
      after_yield = true;
    });
    self = &f;
    handle_set.succeed();
    return f.await().interrupted();
  });
  EXPECT_TRUE(e.value());
  EXPECT_EQ(got, 42);
  EXPECT_FALSE(after_yield);
}

TEST_P(AsioTest, test_asio_echo_between_two_fibers_over_tcp) {
  IoContext io(2);
  tcp::acceptor acceptor(io.get(), {boost::asio::ip::address_v4::loopback(), 0});
  const tcp::endpoint at = acceptor.local_endpoint();
  constexpr int kMessages = 50;
  Exit<int> e = run([&] {
    Fiber<std::size_t> server = fork([&] {
      tcp::socket peer = acceptor.async_accept(use_fiber);  // a move-only result
      std::array<char, 64> buf{};
      std::size_t echoed = 0;
      for (;;) {
        auto [ec, n] =
            peer.async_read_some(boost::asio::buffer(buf), boost::asio::as_tuple(use_fiber));
        if (ec == boost::asio::error::eof) return echoed;
        if (ec) throw boost::system::system_error(ec);
        echoed += boost::asio::async_write(peer, boost::asio::buffer(buf, n), use_fiber);
      }
    });
    Fiber<int> client = fork([&] {
      tcp::socket sock(io.get());
      sock.async_connect(at, use_fiber);
      int matched = 0;
      for (int i = 0; i < kMessages; ++i) {
        const std::string msg = "message " + std::to_string(i);
        boost::asio::async_write(sock, boost::asio::buffer(msg), use_fiber);
        std::string reply(msg.size(), '\0');
        boost::asio::async_read(sock, boost::asio::buffer(reply), use_fiber);
        matched += reply == msg ? 1 : 0;
      }
      sock.shutdown(tcp::socket::shutdown_send);
      return matched;
    });
    const int matched = client.join();
    EXPECT_GT(server.join(), 0u);
    return matched;
  });
  EXPECT_EQ(e.value(), kMessages);
}

TEST_P(AsioTest, test_asio_void_signature_post_returns_void) {
  IoContext io;
  static_assert(std::is_void_v<decltype(boost::asio::post(io.get_executor(), use_fiber))>);
  std::atomic<bool> ran{false};
  Exit<bool> e = run([&] {
    boost::asio::post(io.get_executor(), [&] { ran = true; });
    boost::asio::post(io.get_executor(), use_fiber);  // after the lambda: one io thread, FIFO
    return ran.load();
  });
  EXPECT_TRUE(e.value());
}

TEST_P(AsioTest, test_asio_multi_value_signature_returns_tuple) {
  IoContext io;
  Exit<bool> e = run([&] {
    using Sig = void(error_code, int, std::string);
    static_assert(std::is_same_v<decltype(complete_with<Sig>(io, error_code{}, 1, std::string{})),
                                 std::tuple<int, std::string>>);
    auto [n, s] = complete_with<Sig>(io, error_code{}, 7, std::string("seven"));
    EXPECT_THROW(
        complete_with<Sig>(io, error_code(boost::asio::error::timed_out), 0, std::string()),
        boost::system::system_error);
    // as_tuple(use_fiber) keeps the error code and the values.
    auto as_tuple = boost::asio::as_tuple(use_fiber);
    auto [ec, count] =
        boost::asio::async_initiate<decltype(as_tuple)&, void(error_code, std::size_t)>(
            PostValues<error_code, std::size_t>{io.get_executor(),
                                                {error_code(boost::asio::error::eof), 3}},
            as_tuple);
    return n == 7 && s == "seven" && ec == boost::asio::error::eof && count == 3;
  });
  EXPECT_TRUE(e.value());
}

TEST_P(AsioTest, test_asio_exception_ptr_signatures_from_co_spawn) {
  IoContext io;
  Exit<int> e = run([&] {
    // co_spawn completes with void(exception_ptr, T) / void(exception_ptr).
    const int v = boost::asio::co_spawn(
        io.get(), []() -> boost::asio::awaitable<int> { co_return 7; }, use_fiber);
    boost::asio::co_spawn(
        io.get(), []() -> boost::asio::awaitable<void> { co_return; }, use_fiber);
    EXPECT_THROW(boost::asio::co_spawn(
                     io.get(),
                     []() -> boost::asio::awaitable<int> {
                       throw Boom("from the coroutine");
                       co_return 0;
                     },
                     use_fiber),
                 Boom);
    EXPECT_EQ((complete_with<void(std::exception_ptr, int)>(io, std::exception_ptr(), 5)), 5);
    return v;
  });
  EXPECT_EQ(e.value(), 7);
}

TEST_P(AsioTest, test_asio_race_between_completion_and_interrupt) {
  // The interrupt lands before, during and after the wait's completion; each
  // round ends either way, never hangs, and the timer object is destroyed
  // only after its handler and the posted cancellation ran (ASan/TSan).
  IoContext io(2);
  constexpr int kRounds = 200;
  int ended_ok = 0;
  int ended_interrupted = 0;
  Exit<void> e = run([&] {
    for (int i = 0; i < kRounds; ++i) {
      Fiber<void> f = fork([&, i] {
        boost::asio::steady_timer timer(io.get(), std::chrono::microseconds(i % 40));
        timer.async_wait(use_fiber);
      });
      for (int k = 0; k < i % 5; ++k) this_fiber::yield();
      Exit<void> x = f.interrupt();
      ended_ok += x.ok() ? 1 : 0;
      ended_interrupted += x.interrupted() ? 1 : 0;
    }
  });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(ended_ok + ended_interrupted, kRounds);
}

// Where the cancellation ran: on an io_context thread, or elsewhere.
enum class Where : int { nowhere, io_thread, other_thread };

// Canceller is the cancellation handler of a parked operation: it records
// where it ran, then completes the operation with operation_aborted.
template <class Handler>
struct Canceller {
  std::shared_ptr<std::optional<Handler>> pending;
  IoContext::executor_type ex;
  std::atomic<Where>* where;

  void operator()(boost::asio::cancellation_type) {
    *where = ex.running_in_this_thread() ? Where::io_thread : Where::other_thread;
    boost::asio::post(ex, [p = pending]() mutable {
      std::move (**p)(error_code(boost::asio::error::operation_aborted));
    });
  }
};

// park_until_cancelled() is an operation that only ends when cancelled.
template <class Handler>
void park_until_cancelled(Handler handler, IoContext::executor_type ex, std::atomic<Where>* where) {
  auto slot = boost::asio::get_associated_cancellation_slot(handler);
  auto pending = std::make_shared<std::optional<Handler>>(std::move(handler));
  slot.template emplace<Canceller<Handler>>(Canceller<Handler>{pending, ex, where});
}

// WithExecutor is an initiation with an associated executor (as Asio's).
struct WithExecutor {
  using executor_type = IoContext::executor_type;
  executor_type ex;
  std::atomic<Where>* where;
  executor_type get_executor() const noexcept { return ex; }
  template <class Handler>
  void operator()(Handler&& handler) const {
    park_until_cancelled(std::forward<Handler>(handler), ex, where);
  }
};

// StreamFirst has no executor and takes its I/O object first (as Beast's).
struct StreamFirst {
  std::atomic<Where>* where;
  template <class Handler>
  void operator()(Handler&& handler, boost::asio::steady_timer* io_object) const {
    const auto* ex = io_object->get_executor().target<IoContext::executor_type>();
    park_until_cancelled(std::forward<Handler>(handler), *ex, where);
  }
};

// Anonymous reveals no executor at all.
struct Anonymous {
  IoContext::executor_type ex;
  std::atomic<Where>* where;
  template <class Handler>
  void operator()(Handler&& handler) const {
    park_until_cancelled(std::forward<Handler>(handler), ex, where);
  }
};

TEST_P(AsioTest, test_asio_cancellation_is_emitted_on_the_operation_executor) {
  IoContext io;
  boost::asio::steady_timer io_object(io.get());
  std::atomic<Where> with_executor{Where::nowhere};
  std::atomic<Where> stream_first{Where::nowhere};
  std::atomic<Where> anonymous{Where::nowhere};
  // interrupted() runs the operation in a fiber, interrupts it while parked.
  auto interrupted = [](auto start) {
    Fiber<void> f = fork([start] { start(); });
    wait_parked(f);
    return f.interrupt().interrupted();
  };
  Exit<bool> e = run([&] {
    using Sig = void(error_code);
    const bool a = interrupted([&] {
      boost::asio::async_initiate<const use_fiber_t&, Sig>(
          WithExecutor{io.get_executor(), &with_executor}, use_fiber);
    });
    const bool b = interrupted([&] {
      boost::asio::async_initiate<const use_fiber_t&, Sig>(StreamFirst{&stream_first}, use_fiber,
                                                           &io_object);
    });
    const bool c = interrupted([&] {
      boost::asio::async_initiate<const use_fiber_t&, Sig>(Anonymous{io.get_executor(), &anonymous},
                                                           use_fiber);
    });
    return a && b && c;
  });
  EXPECT_TRUE(e.value());
  EXPECT_EQ(with_executor.load(), Where::io_thread);
  EXPECT_EQ(stream_first.load(), Where::io_thread);
  // Unknown executor: emitted on the interrupted fiber's own thread.
  EXPECT_EQ(anonymous.load(), Where::other_thread);
}

TEST_P(AsioTest, test_asio_interrupt_pending_on_entry_starts_nothing) {
  IoContext io;
  std::atomic<int> handled{0};
  error_code ec;
  Exit<void> e = run([&] {
    boost::asio::steady_timer timer(io.get(), 0ms);
    Uninterruptible mask;
    interrupt();  // recorded: pending
    mask.restore([&] {
      boost::asio::async_initiate<const use_fiber_t&, void(error_code)>(
          CountedWait{&timer, &handled, &ec}, use_fiber);
    });
  });
  EXPECT_TRUE(e.interrupted());
  EXPECT_EQ(handled.load(), 0);  // the wait was never started
}

TEST(AsioThreadTest, test_asio_plain_thread_blocks_until_handler) {
  IoContext io;
  boost::asio::steady_timer timer(io.get(), 5ms);
  timer.async_wait(use_fiber);  // no fiber: blocks this thread
  EXPECT_GE(std::chrono::steady_clock::now(), timer.expiry());
  EXPECT_EQ((complete_with<void(error_code, int)>(io, error_code{}, 3)), 3);
  EXPECT_THROW(complete_with<void(error_code)>(io, error_code(boost::asio::error::broken_pipe)),
               boost::system::system_error);
}

TEST(AsioThreadTest, test_asio_on_the_io_thread_is_a_logic_error) {
  IoContext io;
  boost::asio::steady_timer timer(io.get(), 0ms);  // its executor: an any_io_executor
  auto strand = boost::asio::make_strand(io.get_executor());
  std::vector<std::string> messages;
  std::latch done(1);
  boost::asio::post(io.get_executor(), [&] {
    auto attempt = [&](auto&& call) {
      try {
        call();
        messages.push_back("returned");
      } catch (const std::logic_error& err) {
        messages.push_back(err.what());
      }
    };
    attempt([&] { boost::asio::post(io.get_executor(), use_fiber); });
    attempt([&] { timer.async_wait(use_fiber); });
    attempt([&] { boost::asio::post(strand, use_fiber); });
    done.count_down();
  });
  done.wait();
  ASSERT_EQ(messages.size(), 3u);
  for (const std::string& message : messages) {
    EXPECT_TRUE(contains(message, "weft::asio::use_fiber")) << message;
    EXPECT_TRUE(contains(message, "wait for itself")) << message;
  }
}

TEST(AsioThreadTest, test_asio_runtime_shutdown_cancels_parked_operations) {
  IoContext io;  // declared before the Runtime, as the header asks
  boost::asio::steady_timer timer(io.get(), 30s);
  std::atomic<int> handled{0};
  error_code handler_ec;
  const auto started = std::chrono::steady_clock::now();
  {
    Runtime rt(RuntimeOptions{.workers = 2});
    Fiber<void> f = rt.spawn([&] {
      boost::asio::async_initiate<const use_fiber_t&, void(error_code)>(
          CountedWait{&timer, &handled, &handler_ec}, use_fiber);
    });
    while (!test::parked(detail::core_of(f))) std::this_thread::yield();
  }  // ~Runtime interrupts f: its wait is cancelled and its handler awaited.
  // The io thread that woke f may still be inside Scheduler::inject() when
  // f has ended: ~Runtime waits it out (TSan caught the use-after-free here
  // before it did).
  EXPECT_LT(std::chrono::steady_clock::now() - started, 15s);
  EXPECT_EQ(handled.load(), 1);
  EXPECT_EQ(handler_ec, boost::asio::error::operation_aborted);
}

TEST(AsioThreadTest, test_asio_io_context_needs_a_thread) {
  EXPECT_THROW(IoContext(0), std::invalid_argument);
  IoContext io(3);
  EXPECT_EQ(io.threads(), 3u);
}

TEST_P(AsioTest, test_asio_operation_dropped_with_its_io_context_throws) {
  auto io = std::make_unique<IoContext>();
  io->get().stop();  // its thread returns: nothing posted runs any more
  Exit<void> e = run([&] {
    Fiber<void> f = fork([&] { boost::asio::post(io->get_executor(), use_fiber); });
    wait_parked(f);
    io.reset();  // destroys the queued handler unrun
    return f.join();
  });
  ASSERT_TRUE(e.failed());
  const auto* err = e.cause().failure<boost::system::system_error>();
  ASSERT_NE(err, nullptr) << e.cause().pretty();
  EXPECT_EQ(err->code(), boost::asio::error::operation_aborted);
  EXPECT_TRUE(contains(err->what(), "destroyed without being called")) << err->what();
}

}  // namespace
}  // namespace weft
