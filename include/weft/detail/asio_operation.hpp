// The machinery behind weft::asio::use_fiber (weft/asio.hpp): one Asio
// operation run from a fiber. Users never name anything here.
//
// An Operation lives on the calling fiber's stack. The completion handler
// given to the initiation points at it: it stores the result and completes
// `completed` (a weft::Deferred, so the fiber parks on weft's one wait word:
// interrupts, timeouts and dumps see an ordinary wait). The fiber never
// leaves run_operation() before the handler has run (or been destroyed
// unrun) and before a cancellation it posted has run: nobody touches the
// Operation after its fiber returns.
#pragma once

#include <weft/deferred.hpp>
#include <weft/interrupt.hpp>
#include <weft/interrupted.hpp>
#include <weft/this_fiber.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <exception>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

namespace weft::asio::detail {

// values_t is what an operation completing with Vs... returns: void for
// none, the value for one, a std::tuple for several.
template <class... Vs>
struct Values {
  using type = std::tuple<Vs...>;
};
template <>
struct Values<> {
  using type = void;
};
template <class V>
struct Values<V> {
  using type = V;
};
template <class... Vs>
using values_t = typename Values<Vs...>::type;

// Operation is the state one use_fiber call shares with its handler.
template <class Value>
class Operation {
 public:
  using value_type = Value;

  // signal is the operation's cancellation signal; its slot is the handler's
  // associated cancellation slot.
  boost::asio::cancellation_signal signal;
  // completed: the handler ran, or was destroyed without running.
  Deferred<void> completed;
  // emitted: the cancellation posted after an interrupt ran (or was dropped).
  Deferred<void> emitted;

  // set_value() stores the operation's values (handler side, once).
  template <class... Vs>
  void set_value(Vs&&... vs) {
    if constexpr (!std::is_void_v<Value>) value_.emplace(std::forward<Vs>(vs)...);
  }
  // set_error() stores a failure code (handler side, once).
  void set_error(const boost::system::error_code& ec) { error_ = ec; }
  // set_exception() stores a failure exception (handler side, once).
  void set_exception(std::exception_ptr e) { exception_ = std::move(e); }
  // abandon() records that the handler was destroyed without being called.
  void abandon() {
    exception_ = std::make_exception_ptr(boost::system::system_error(
        boost::asio::error::operation_aborted,
        "weft::asio::use_fiber: the operation's handler was destroyed without being called "
        "(its io_context was stopped or destroyed)"));
  }
  // succeeded() is true when the operation reported no error (after completed).
  bool succeeded() const noexcept { return !error_ && !exception_; }
  // take() is the result: the values, or the error thrown (after completed).
  Value take() {
    if (exception_) std::rethrow_exception(exception_);
    if (error_) throw boost::system::system_error(error_);
    if constexpr (!std::is_void_v<Value>) return std::move(*value_);
  }

 private:
  using Stored = std::conditional_t<std::is_void_v<Value>, std::monostate, Value>;
  std::optional<Stored> value_;
  boost::system::error_code error_;
  std::exception_ptr exception_;
};

// Signature<Args...> reads a completion signature void(Args...): a leading
// error_code or exception_ptr is the error channel, the rest are values.
template <class... Args>
struct Signature {
  using value_type = values_t<Args...>;
  template <class Op, class... As>
  static void store(Op& op, As&&... args) {
    op.set_value(std::forward<As>(args)...);
  }
};
template <class... Vs>
struct Signature<boost::system::error_code, Vs...> {
  using value_type = values_t<Vs...>;
  template <class Op, class... As>
  static void store(Op& op, const boost::system::error_code& ec, As&&... vs) {
    if (ec) {
      op.set_error(ec);  // the values that come with an error are dropped (see asio.hpp)
    } else {
      op.set_value(std::forward<As>(vs)...);
    }
  }
};
template <class... Vs>
struct Signature<std::exception_ptr, Vs...> {
  using value_type = values_t<Vs...>;
  template <class Op, class... As>
  static void store(Op& op, std::exception_ptr e, As&&... vs) {
    if (e) {
      op.set_exception(std::move(e));
    } else {
      op.set_value(std::forward<As>(vs)...);
    }
  }
};
// AllValues<Args...> is as_tuple(use_fiber): every argument is a value.
template <class... Args>
struct AllValues {
  using value_type = std::tuple<Args...>;
  template <class Op, class... As>
  static void store(Op& op, As&&... args) {
    op.set_value(std::forward<As>(args)...);
  }
};

// Handler is the completion handler use_fiber gives an initiation. Move-only;
// exactly one live copy completes the Operation, by being called or, if the
// operation is dropped unrun (io_context destroyed), by its destructor. It
// declares no executor, so Asio runs it on the operation's own (the I/O
// object's) executor, where it only stores the result and completes a Deferred.
template <class Traits, class... Args>
class Handler {
 public:
  using Op = Operation<typename Traits::value_type>;
  // cancellation_slot_type: the handler's slot is the Operation's signal's.
  using cancellation_slot_type = boost::asio::cancellation_slot;

  explicit Handler(Op& op) noexcept : op_(&op) {}
  Handler(Handler&& other) noexcept : op_(std::exchange(other.op_, nullptr)) {}
  Handler& operator=(Handler&&) = delete;
  ~Handler() {
    if (op_ == nullptr) return;
    op_->abandon();
    (void)op_->completed.try_succeed();
  }

  // get_cancellation_slot() is where the operation installs its cancellation.
  cancellation_slot_type get_cancellation_slot() const noexcept {
    return op_ != nullptr ? op_->signal.slot() : cancellation_slot_type();
  }
  // operator() stores the result and wakes the fiber; the last touch of the Operation.
  void operator()(Args... args) {
    Op* op = std::exchange(op_, nullptr);
    Traits::store(*op, std::forward<Args>(args)...);
    op->completed.succeed();
  }

 private:
  Op* op_;
};

// HandlerFor<Traits, R(Args...)> is the Handler of a completion signature.
template <class Traits, class Sig>
struct HandlerFor;
template <class Traits, class R, class... Args>
struct HandlerFor<Traits, R(Args...)> {
  using type = Handler<Traits, Args...>;
};

// NoExecutor stands for "the operation's executor is unknown".
struct NoExecutor {};

// HasExecutor: t.get_executor() names an executor (Asio's I/O objects
// declare it non-const).
template <class T>
concept HasExecutor = requires(T& t) {
  t.get_executor();
};
template <class T>
concept PointsToExecutor = std::is_pointer_v<T> && HasExecutor<std::remove_pointer_t<T>>;

// first_argument_executor() is the executor of an initiation's first
// argument (an I/O object or a pointer to one), or NoExecutor.
template <class First, class... Rest>
auto first_argument_executor(First& first, Rest&...) {
  if constexpr (HasExecutor<First>) {
    return first.get_executor();
  } else if constexpr (PointsToExecutor<First>) {
    return first->get_executor();
  } else {
    return NoExecutor{};
  }
}

// operation_executor() is the executor the operation runs on, where its
// cancellation must be emitted: the initiation's associated executor (every
// Asio I/O object and free function has one); else the first argument's
// (Beast's initiations pass their stream, by pointer, first); else unknown.
template <class Init, class... Args>
auto operation_executor(const Init& init, Args&... args) {
  if constexpr (!std::is_same_v<boost::asio::associated_executor_t<Init, NoExecutor>, NoExecutor>) {
    return boost::asio::associated_executor<Init, NoExecutor>::get(init);
  } else if constexpr (sizeof...(Args) > 0) {
    return first_argument_executor(args...);
  } else {
    return NoExecutor{};
  }
}

// runs_here() is true when this thread runs `ex`'s io_context (seen through
// any_io_executor and strands): waiting there for the handler could deadlock.
template <class Ex>
bool runs_here(const Ex& ex) noexcept {
  if constexpr (std::is_same_v<Ex, boost::asio::io_context::executor_type>) {
    return ex.running_in_this_thread();
  } else if constexpr (std::is_same_v<Ex, boost::asio::any_io_executor>) {
    const auto* io = ex.template target<boost::asio::io_context::executor_type>();
    return io != nullptr && io->running_in_this_thread();
  } else if constexpr (requires { ex.get_inner_executor(); }) {
    return runs_here(ex.get_inner_executor());  // a strand runs on its inner executor's threads
  } else {
    return false;
  }
}

// Emitter emits the cancellation on the operation's executor, unless the
// handler already ran there; then it (or its destructor, if the executor
// drops it unrun) completes `emitted`.
template <class Value>
class Emitter {
 public:
  explicit Emitter(Operation<Value>& op) noexcept : op_(&op) {}
  Emitter(Emitter&& other) noexcept : op_(std::exchange(other.op_, nullptr)) {}
  Emitter& operator=(Emitter&&) = delete;
  ~Emitter() {
    if (op_ != nullptr) (void)op_->emitted.try_succeed();
  }
  void operator()() {
    Operation<Value>* op = std::exchange(op_, nullptr);
    // After the handler ran, the slot's cancellation handler may refer to a
    // finished operation: leave it alone.
    if (!op->completed.done()) op->signal.emit(boost::asio::cancellation_type::all);
    op->emitted.succeed();
  }

 private:
  Operation<Value>* op_;
};

// cancel_and_settle() emits the cancellation on `ex` (on this thread when
// unknown) and waits, masked, until both the handler and the emission ran.
template <class Value, class Ex>
void cancel_and_settle(Operation<Value>& op, const Ex& ex) {
  Uninterruptible mask;
  if constexpr (std::is_same_v<Ex, NoExecutor>) {
    Emitter<Value> emitter(op);
    emitter();
  } else {
    boost::asio::post(ex, Emitter<Value>(op));
  }
  op.completed.await();
  op.emitted.await();
}

// run_operation() starts the operation with a Handler and waits for it: the
// whole of use_fiber (see weft/asio.hpp for the contract).
template <class Traits, class Sig, class Init, class... Args>
typename Traits::value_type run_operation(Init&& init, Args&&... args) {
  const auto ex = operation_executor(init, args...);
  if (runs_here(ex)) {
    throw std::logic_error(
        "weft::asio::use_fiber called on a thread that runs the operation's executor: it would "
        "wait for itself; call it from a fiber or from another thread");
  }
  weft::detail::throw_if_interrupted();  // pending on entry: nothing is started
  Operation<typename Traits::value_type> op;
  try {
    std::forward<Init>(init)(typename HandlerFor<Traits, Sig>::type(op),
                             std::forward<Args>(args)...);
  } catch (...) {
    // Asio starts nothing when an initiation throws; should the handler
    // still live somewhere, the Operation must outlive it.
    if (!op.completed.done()) cancel_and_settle(op, ex);
    throw;
  }
  std::exception_ptr interrupted;
  try {
    op.completed.await();
  } catch (const Interrupted&) {
    interrupted = std::current_exception();
  }
  if (interrupted) {
    cancel_and_settle(op, ex);
    // Completed first: the value is returned and the interrupt stays pending
    // for the next yield point (DESIGN 3.4: it is sticky).
    if (!op.succeeded()) std::rethrow_exception(interrupted);
  }
  return op.take();
}

}  // namespace weft::asio::detail
