// weft::asio: Boost.Asio operations from fibers (DESIGN §1 "Asio bridge").
// Not in the umbrella header: only code that includes this header depends on
// Asio (header-only; Boost.System is header-only since 1.69).
//
//   weft::asio::IoContext io;                 // an io_context and its thread
//   boost::asio::ip::tcp::socket sock(io.get());
//   std::size_t n = sock.async_read_some(buf, weft::asio::use_fiber);
//
// Results. Any asynchronous operation (Asio's own, Beast, Boost.Redis,
// Boost.MySQL...) called with `use_fiber` parks the calling fiber and returns
// what the operation completes with: for a completion signature
//   void()                                  -> void
//   void(error_code) / void(exception_ptr)  -> void
//   void(error_code, T) / void(T)           -> T
//   void(error_code, T1, T2, ...)           -> std::tuple<T1, T2, ...>
// A non-zero error_code is thrown as boost::system::system_error, a non-null
// exception_ptr is rethrown; the values that came with the error are then
// dropped (as with use_future). `boost::asio::as_tuple(use_fiber)` never
// throws: it returns every argument, error_code included, as a std::tuple
// (e.g. the bytes a read moved before it hit end of file).
//
// Memory ordering: everything the handler's thread did before the handler
// ran happens-before the fiber's return from the call.
//
// Interruption. The call is an interruptible yield point. An interrupt
// pending on entry throws Interrupted before the operation starts. An
// interrupt while parked:
//  1. emits cancellation_type::all on the cancellation slot the operation
//     installed through the handler's associated slot. The emission runs on
//     the operation's executor (posted), because Asio's cancellation signal
//     is not thread-safe: it must not race the operation installing and
//     replacing its cancellation handler there (composed operations do, at
//     each step). The executor is the initiation's associated executor (every
//     Asio I/O object and free function has one, the I/O object's); Beast's
//     initiations have none and pass their stream first, so the first
//     argument's get_executor() is used next. Failing both (a hand-written
//     initiation without an executor, or one hidden by a wrapper token such
//     as redirect_error(use_fiber, ec); as_tuple(use_fiber) keeps it), the
//     signal is emitted on the interrupted fiber's thread: safe for Asio's
//     socket and timer operations, whose cancellation handlers take the
//     reactor's lock, not in general. On an io_context run by several
//     threads, a composed operation's cancellation needs a strand, as in
//     any Asio program;
//  2. waits, uninterruptibly, until the operation's handler has run: the
//     operation's buffers and I/O object are never released under it, and an
//     operation that ignores cancellation (post, or one that does not support
//     it) delays the interrupt until it completes, like a masked region;
//  3. throws Interrupted if the operation ended with an error (usually
//     operation_aborted). If it completed successfully first, its result is
//     returned and the interrupt stays pending: the next yield point throws.
// So `weft::timeout(20ms, [&] { return sock.async_read_some(buf, use_fiber); })`
// returns std::nullopt at the deadline and the socket is usable afterwards.
//
// Plain threads. Called from a thread that is not a fiber, use_fiber blocks
// the thread until the handler has run (a thread is never interrupted).
// Calling it on a thread that runs the operation's executor would wait for
// itself: std::logic_error, detected for io_context executors (also behind
// any_io_executor or a strand).
//
// Lifetime. If the operation is dropped without its handler being called
// (its io_context stopped and destroyed), the call throws system_error
// (operation_aborted, "...destroyed without being called"): never a hang
// once the io_context is gone. Declare an IoContext before the
// weft::Runtime whose fibers use it: a fiber interrupted by ~Runtime waits
// for its handler, which needs the io_context still running.
//
// Not supported: operations with several completion signatures, and the
// legacy async_result protocol without initiate() (Asio < 1.19 style).
#pragma once

#include <weft/detail/asio_operation.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <stdexcept>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace weft::asio {

// use_fiber_t is the type of use_fiber, the completion token that parks the
// calling fiber until the operation completes and returns its result.
struct use_fiber_t {
  constexpr use_fiber_t() noexcept = default;
};

// use_fiber makes an Asio operation a blocking call of the current fiber.
inline constexpr use_fiber_t use_fiber{};

// IoContext is an asio::io_context run by its own threads (RAII).
class IoContext {
 public:
  using executor_type = boost::asio::io_context::executor_type;

  // IoContext() starts `threads` threads (at least 1) running the context
  // until destruction; std::invalid_argument on 0. A handler that throws on
  // them terminates the process, as any exception escaping a std::thread.
  explicit IoContext(unsigned threads = 1)
      : context_(static_cast<int>(threads)), guard_(context_.get_executor()) {
    if (threads == 0) throw std::invalid_argument("weft::asio::IoContext: threads must be >= 1");
    threads_.reserve(threads);
    try {
      for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { context_.run(); });
    } catch (...) {
      shutdown();  // a thread that could not start: join the ones that did
      throw;
    }
  }
  // ~IoContext() releases the work guard, stops the context and joins its
  // threads; operations still pending are then dropped with the context
  // (their use_fiber callers throw system_error, see above).
  ~IoContext() { shutdown(); }
  IoContext(const IoContext&) = delete;
  IoContext& operator=(const IoContext&) = delete;

  // get() is the io_context, to construct I/O objects on.
  boost::asio::io_context& get() noexcept { return context_; }
  // get_executor() is the io_context's executor.
  executor_type get_executor() noexcept { return context_.get_executor(); }
  // threads() is how many threads run the context.
  unsigned threads() const noexcept { return static_cast<unsigned>(threads_.size()); }

 private:
  void shutdown() noexcept {
    guard_.reset();
    context_.stop();
    for (std::thread& t : threads_) t.join();
  }

  boost::asio::io_context context_;
  boost::asio::executor_work_guard<executor_type> guard_;
  std::vector<std::thread> threads_;
};

}  // namespace weft::asio

namespace weft::asio::detail {
// ResultOf is the async_result of use_fiber and as_tuple(use_fiber): it runs
// the operation with `Traits` deciding what the completion returns.
template <class Traits, class Signature>
struct ResultOf {
  using return_type = typename Traits::value_type;

  template <class Initiation, class RawToken, class... InitArgs>
  static return_type initiate(Initiation&& initiation, RawToken&&, InitArgs&&... args) {
    return run_operation<Traits, Signature>(std::forward<Initiation>(initiation),
                                            std::forward<InitArgs>(args)...);
  }
};
}  // namespace weft::asio::detail

namespace boost::asio {

// use_fiber: the operation's values, its error thrown (see the top of this header).
template <class R, class... Args>
class async_result<weft::asio::use_fiber_t, R(Args...)>
    : public weft::asio::detail::ResultOf<weft::asio::detail::Signature<std::decay_t<Args>...>,
                                          R(Args...)> {};

// as_tuple(use_fiber): every completion argument, error_code included, as a
// std::tuple; never throws the operation's error.
template <class R, class... Args>
class async_result<as_tuple_t<weft::asio::use_fiber_t>, R(Args...)>
    : public weft::asio::detail::ResultOf<weft::asio::detail::AllValues<std::decay_t<Args>...>,
                                          R(Args...)> {};

}  // namespace boost::asio
