// Interrupted: what an interruptible yield point throws when an interrupt is
// pending (DESIGN §1 "Exceptions", §3.1). It deliberately does NOT derive
// from std::exception, so `catch (const std::exception&)` in user code does not
// swallow an interruption; `catch (...)` does, and the interruption is then
// delivered again at the next interruptible yield point (§3.4).
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "weft/cause.hpp"

namespace weft {

// Interrupted unwinds an interrupted fiber; cause() says who interrupted it.
class Interrupted {
 public:
  // Interrupted(cause) carries the interruption (usually Cause::interrupt(by));
  // never throws, so delivering an interrupt cannot turn into bad_alloc.
  explicit Interrupted(Cause cause) noexcept;
  // cause() is the interruption being delivered.
  const Cause& cause() const noexcept { return cause_; }
  // what() is e.g. "weft::Interrupted: interrupted by #3, #5".
  const char* what() const noexcept;

 private:
  // The message is built on the first what(), not per throw: an interrupt
  // is thrown far more often than it is printed. Shared by copies.
  struct Message {
    std::atomic<const std::string*> text{nullptr};
    ~Message() { delete text.load(std::memory_order_relaxed); }
  };
  Cause cause_;
  std::shared_ptr<Message> message_;  // shared: copying stays noexcept
};

namespace detail {
// ScopeInterrupted is the Interrupted that a timeout run on its caller's own
// stack throws at its deadline (include/weft/detail/timeout_scope.hpp): user
// code sees an Interrupted like any other, and only the timeout frame that
// armed the deadline catches this type; a real interrupt of the fiber is a
// plain Interrupted and passes that frame by.
class ScopeInterrupted final : public Interrupted {
 public:
  using Interrupted::Interrupted;
};
}  // namespace detail

}  // namespace weft
