// weft::blocking(f): run a blocking call (a syscall without a non-blocking
// form, getaddrinfo, a C library that blocks) on the runtime's pool of
// blocking-call threads, so that it holds no worker (DESIGN.md §1 "I/O and
// blocking calls"). Part of <weft/io.hpp>.
//
// The pool: per runtime, its threads started on demand up to
// RuntimeOptions::blocking_threads (calls beyond it queue, first come first
// served); a thread idle for RuntimeOptions::blocking_idle ends. A runtime
// that never calls blocking() starts no thread for it (Tokio's blocking
// pool works the same way: spawn_blocking, max_blocking_threads,
// thread_keep_alive).
//
// Memory ordering: everything the caller did before blocking() happens-before
// f runs; everything f did happens-before blocking() returns or throws.
//
// Interruption: blocking() is an interruptible yield point.
// - An interrupt pending on entry throws Interrupted; f never runs.
// - Interrupted while the call is still queued: it leaves the queue and never
//   runs; Interrupted is thrown.
// - Interrupted while f runs: stop is requested on the std::stop_token f
//   took (if it takes one), then the caller waits, uninterruptibly, for f to
//   return (back-pressure, as Fiber::interrupt() waits for the fiber), then
//   throws Interrupted. Whatever f returned or threw is discarded, even if it
//   finished just as the interrupt arrived: once an interrupt has ended the
//   wait, the caller always throws Interrupted. f that never looks at its
//   token delays the caller (and its parent, and ~Runtime) until it returns.
// - When f's completion ends the wait before the interrupt does, blocking()
//   returns f's result and the interrupt is delivered at the next yield point.
// - Inside an Uninterruptible region the caller just waits for f (its token
//   never fires); the interrupt stays pending.
//
// From a plain thread (no current fiber) f runs on the calling thread with a
// token that never fires: the call blocks the thread, as every weft call
// does there.
//
// f is called once, as std::invoke(std::forward<F>(f), token) when it takes a
// std::stop_token (the rule of std::jthread) and std::invoke(std::forward<F>(f))
// otherwise; it is never copied. Its result R may be void, move-only or an
// lvalue reference; an exception it throws reaches the caller as itself.
#pragma once

#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <weft/source_location.hpp>
#include <stop_token>
#include <type_traits>
#include <utility>
#include <variant>

namespace weft {

namespace detail {

// BlockingTask is the type-erased call the pool runs: one weft::blocking().
class BlockingTask {
 public:
  // run() calls f with `stop`, keeping its result or exception. Any thread.
  virtual void run(std::stop_token stop) noexcept = 0;
  // takes_token() is true when f looks at a std::stop_token (else none is made).
  bool takes_token() const noexcept { return takes_token_; }

 protected:
  explicit BlockingTask(bool takes_token) noexcept : takes_token_(takes_token) {}
  ~BlockingTask() = default;

 private:
  bool takes_token_;
};

// run_blocking() runs `task` on the current fiber's blocking pool and parks
// until it has run (see the top of this header), or runs it here on a plain
// thread. Throws Interrupted (the task then either never ran or has
// returned), or std::system_error when the pool has no thread and cannot
// start one.
void run_blocking(BlockingTask& task, weft::source_location where);

// blocking_takes_token<F> is true when f is called with a std::stop_token.
template <class F>
inline constexpr bool blocking_takes_token = std::is_invocable_v<F, std::stop_token>;

// blocking_result_t<F> is the result type of f's call.
template <class F>
using blocking_result_t =
    typename std::conditional_t<blocking_takes_token<F>, std::invoke_result<F, std::stop_token>,
                                std::invoke_result<F>>::type;

// BlockingCall<F> calls a forwarded f (by reference: the caller's frame
// outlives the call) and keeps its result for the caller.
template <class F>
class BlockingCall final : public BlockingTask {
 public:
  using R = blocking_result_t<F>;
  static_assert(!std::is_rvalue_reference_v<R>,
                "weft::blocking: f returns an rvalue reference; return by value");

  explicit BlockingCall(F&& f) noexcept : BlockingTask(blocking_takes_token<F>), f_(f) {}

  void run(std::stop_token stop) noexcept override {
    try {
      if constexpr (std::is_void_v<R>) {
        call(stop);
        value_.emplace();
      } else if constexpr (std::is_lvalue_reference_v<R>) {
        value_.emplace(std::addressof(call(stop)));
      } else {
        value_.emplace(call(stop));
      }
    } catch (...) {
      error_ = std::current_exception();
    }
  }
  // take() is the result, or rethrows f's exception (after run_blocking()).
  R take() {
    if (error_) std::rethrow_exception(error_);
    if constexpr (std::is_lvalue_reference_v<R>) {
      return **value_;
    } else if constexpr (!std::is_void_v<R>) {
      return std::move(*value_);
    }
  }

 private:
  using Value = std::conditional_t<
      std::is_void_v<R>, std::monostate,
      std::conditional_t<std::is_lvalue_reference_v<R>, std::remove_reference_t<R>*, R>>;

  decltype(auto) call(std::stop_token stop) {
    if constexpr (blocking_takes_token<F>) {
      return std::invoke(std::forward<F>(f_), std::move(stop));
    } else {
      return std::invoke(std::forward<F>(f_));
    }
  }

  F& f_;
  std::optional<Value> value_;
  std::exception_ptr error_;
};

}  // namespace detail

// blocking() runs f on the runtime's pool of blocking-call threads; the
// calling fiber parks until f returns and gets its value or exception. f may
// take a std::stop_token, which an interrupt of the caller stops. A yield
// point (see the top of this header); on a plain thread f runs right here.
template <class F>
auto blocking(F&& f, weft::source_location where = weft::source_location::current())
    -> detail::blocking_result_t<F> {
  static_assert(detail::blocking_takes_token<F> || std::is_invocable_v<F>,
                "weft::blocking: f must be callable with no argument or with a std::stop_token");
  detail::BlockingCall<F> call(std::forward<F>(f));
  detail::run_blocking(call, where);
  return call.take();
}

}  // namespace weft
