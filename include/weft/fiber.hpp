// Fiber<T>: a shared handle to a fiber; fork/fork_daemon start fibers from a
// fiber; interrupt_all and disconnect.
#pragma once

#include <weft/deadline.hpp>
#include <weft/detail/fiber_core.hpp>
#include <weft/detail/fiber_group.hpp>
#include <weft/detail/local_map.hpp>
#include <weft/exit.hpp>
#include <weft/fiber_id.hpp>
#include <weft/fork_options.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <weft/source_location.hpp>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace weft {

namespace detail {
struct FiberAccess;
}  // namespace detail

// Fiber<T> is a copyable handle sharing ownership of a fiber returning T.
template <class T>
class Fiber {
 public:
  // Fiber() is an empty handle; using it throws std::logic_error.
  Fiber() noexcept = default;
  // Fiber(ref) adopts a fiber reference (used by fork/spawn).
  explicit Fiber(detail::FiberRef ref) noexcept : ref_(std::move(ref)) {}

  // id() is the fiber's id.
  FiberId id() const { return core().id(); }
  // done() is true once the fiber's Exit is published.
  bool done() const { return core().done(); }
  // poll() is the Exit if the fiber ended, without waiting.
  [[nodiscard]] std::optional<Exit<T>> poll() const {
    if (!core().done()) return std::nullopt;
    return take();
  }
  // await() waits for the end (finalizers and children included) and returns the Exit.
  // An interruptible yield point, even when the fiber already ended: a
  // pending interrupt of the caller is thrown first (as Go's and Effect's
  // joins, and every weft primitive, do). join() and interrupt() too.
  // Every blocking call takes the caller's line (`where`) for dumps.
  [[nodiscard("join() rethrows instead")]] Exit<T> await(
      weft::source_location where = weft::source_location::current()) {
    core().await_done(where);
    return take();
  }
  // await_until() is await() that gives up at `deadline`: the Exit, or
  // std::nullopt when the deadline passed first (the fiber runs on). A
  // yield point, from a fiber or a plain thread, like await().
  [[nodiscard]] std::optional<Exit<T>> await_until(
      Deadline deadline, weft::source_location where = weft::source_location::current()) {
    if (!core().await_done_until(deadline, where)) return std::nullopt;
    return take();
  }
  // await_for() is await_until(this_fiber::now() + d).
  [[nodiscard]] std::optional<Exit<T>> await_for(
      std::chrono::nanoseconds d, weft::source_location where = weft::source_location::current()) {
    return await_until(detail::deadline_after(d), where);
  }
  // join() is await().value(): the value, or the cause rethrown.
  T join(weft::source_location where = weft::source_location::current()) {
    core().await_done(where, "Fiber::join");
    if constexpr (std::is_void_v<T>) {
      take().value();
    } else {
      return std::move(take().value());
    }
  }
  // interrupt() requests interruption, waits for the end and returns the Exit.
  [[nodiscard("for the effect only: interrupt_fork()")]] Exit<T> interrupt(
      weft::source_location where = weft::source_location::current()) {
    detail::FiberCore& c = core();
    c.request_interrupt(detail::current_id());
    if (&c == detail::current_fiber()) detail::interrupt_self_and_check(c);
    c.await_done(where, "Fiber::interrupt");
    return take();
  }
  // interrupt_fork() requests interruption and returns at once.
  void interrupt_fork() { core().request_interrupt(detail::current_id()); }
  // valid() is false for an empty or moved-from handle.
  bool valid() const noexcept { return static_cast<bool>(ref_); }

 private:
  friend struct detail::FiberAccess;
  // core() is the control block (weft's combinators reach it through
  // detail::core_of; not part of the public API).
  detail::FiberState<T>& core() const {
    if (!ref_) [[unlikely]]
      throw std::logic_error("weft::Fiber: use of an empty or moved-from fiber handle");
    return static_cast<detail::FiberState<T>&>(*ref_.get());
  }
  Exit<T> take() const {
    if constexpr (std::is_copy_constructible_v<Exit<T>>) {
      return core().exit();
    } else {
      return detail::take_move_only_exit(core());
    }
  }
  detail::FiberRef ref_;
};

namespace detail {
// FiberAccess opens a Fiber handle's control block to weft's own templates
// (combinators, the runtime) and tests; users never need it.
struct FiberAccess {
  template <class T>
  static FiberState<T>& core(const Fiber<T>& f) {
    return f.core();
  }
};
// core_of() is the control block behind `f` (throws for an empty handle).
template <class T>
FiberState<T>& core_of(const Fiber<T>& f) {
  return FiberAccess::core(f);
}

// make_fiber() allocates the control block for f (not yet started).
template <class F>
auto make_fiber(Scheduler& s, FiberCore* parent, const ForkOptions& o, F&& f) {
  using R = std::invoke_result_t<std::decay_t<F>&>;
  check_stack_size(o.stack_size, "ForkOptions::stack_size");
  return new FiberTask<R, std::decay_t<F>>(s, parent, o, std::forward<F>(f));
}
}  // namespace detail

// fork() starts f as a child of the current fiber. It never switches: the
// child runs at the parent's next yield point at the earliest, or sooner on a
// worker that steals it. The child starts with a copy of the parent's
// FiberLocal values (weft/fiber_local.hpp). Outside a fiber it throws
// std::logic_error.
template <class F>
auto fork(F&& f, ForkOptions options = {}) -> Fiber<std::invoke_result_t<std::decay_t<F>&>> {
  using R = std::invoke_result_t<std::decay_t<F>&>;
  detail::FiberCore* parent = detail::current_fiber();
  if (parent == nullptr)
    throw std::logic_error("weft::fork called outside any fiber; use Runtime::spawn");
  auto* core =
      detail::make_fiber(detail::scheduler_of(*parent), parent, options, std::forward<F>(f));
  detail::inherit_locals(*core, *parent);  // FiberLocal values, as they are now
  Fiber<R> handle{detail::FiberRef(core)};
  detail::start_fiber(core, /*root=*/false);
  return handle;
}

// fork_daemon() starts f as a child of the runtime: it outlives its forker and
// is interrupted only by the Runtime's destructor (or explicitly). Like fork,
// it starts with a copy of the forker's FiberLocal values.
template <class F>
auto fork_daemon(F&& f, ForkOptions options = {}) -> Fiber<std::invoke_result_t<std::decay_t<F>&>> {
  using R = std::invoke_result_t<std::decay_t<F>&>;
  detail::Scheduler& s = detail::require_scheduler("weft::fork_daemon");
  auto* core = detail::make_fiber(s, nullptr, options, std::forward<F>(f));
  detail::inherit_locals(*core, *detail::current_fiber());  // as fork: the forker's values
  Fiber<R> handle{detail::FiberRef(core)};
  detail::start_fiber(core, /*root=*/true);
  return handle;
}

// interrupt_all() requests interruption of every fiber, then awaits them all.
// The await is interruptible (unlike a fiber's end, race or Scope): an
// interrupt of the caller stops the waiting, the fibers still end.
template <class T>
void interrupt_all(std::span<Fiber<T>> fibers,
                   weft::source_location where = weft::source_location::current()) {
  detail::FiberGroup group;
  group.reserve(fibers.size());
  for (Fiber<T>& f : fibers)
    group.add(detail::core_of(f));  // an empty handle throws before any request
  group.interrupt(detail::current_id());
  group.await(where);
}

// disconnect() runs f in a daemon fiber and awaits it; an interrupt of the
// caller returns at once (throwing Interrupted) while f finishes in the background.
template <class F>
auto disconnect(F&& f) -> std::invoke_result_t<std::decay_t<F>&> {
  (void)detail::require_scheduler("weft::disconnect");  // std::logic_error outside a fiber
  return fork_daemon(std::forward<F>(f)).join();
}

}  // namespace weft
