// Scope: the RAII nursery (DESIGN.md 3.6). Children forked through a scope
// may borrow locals declared before it. join() awaits them all and rethrows
// the failure (one: the original exception; several: CauseError); the first
// child failure interrupts the others; the destructor interrupts and awaits
// whatever is still running, and reports a failure nobody joined (on stderr,
// naming the child and printing its cause; a debug assertion unless
// unwinding). A failure join() rethrows and that escapes the owner keeps the
// children's cause, fibers included (Cause::fail unwraps it).
#pragma once

#include <weft/detail/fiber_core.hpp>
#include <weft/fiber.hpp>

#include <atomic>
#include <weft/source_location.hpp>
#include <type_traits>
#include <utility>
#include <vector>

namespace weft {

// Scope owns the fibers forked through it.
class Scope {
 public:
  // Scope() opens a nursery in the current fiber (std::logic_error elsewhere).
  Scope();
  // ~Scope() interrupts and awaits the children still running.
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

  // fork() starts f as a child of the current fiber owned by this scope.
  template <class F>
  auto fork(F&& f, ForkOptions options = {}) -> Fiber<std::invoke_result_t<std::decay_t<F>&>> {
    using R = std::invoke_result_t<std::decay_t<F>&>;
    auto body = [this, fn = std::forward<F>(f)]() mutable -> R {
      try {
        return fn();
      } catch (const Interrupted&) {
        throw;
      } catch (...) {
        child_failed();
        throw;
      }
    };
    Fiber<R> child = weft::fork(std::move(body), std::move(options));
    add(&detail::core_of(child));
    return child;
  }
  // join() awaits every child; rethrows one failure as is, several as CauseError.
  // `where` is the caller's line, for dumps.
  void join(weft::source_location where = weft::source_location::current());

 private:
  void add(detail::FiberCore* child);
  // children_from() is a new reference to each child from index `from` on,
  // copied under the spin lock into space reserved outside it.
  std::vector<detail::FiberRef> children_from(std::size_t from);
  void child_failed() noexcept;
  Cause collect_failures();
  // report_unjoined_failures() writes each failure join() did not report to
  // stderr, naming the child; true if there was one.
  bool report_unjoined_failures();

  detail::FiberCore* owner_;
  detail::SpinLock lock_;
  std::vector<detail::FiberRef> children_ WEFT_GUARDED_BY(lock_);
  std::size_t reported_ = 0;  // children whose failures were reported (owner-only)
  std::atomic<bool> failed_{false};
};

}  // namespace weft
