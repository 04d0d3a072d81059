// Cause: why a fiber did not succeed, as an immutable tree (after ZIO's
// `Cause` and Effect-TS's `Cause`). Leaves are failures (an exception that
// escaped) and interruptions (who interrupted); inner nodes say whether two
// causes happened one after the other (a finalizer failed after the body) or
// side by side (two raced fibers both failed).
//
// A Cause is one shared pointer: copying it is a reference-count increment and
// never copies the tree, and the empty cause is a null pointer (no
// allocation). Nodes are never modified after construction, so copies may be
// read from any number of threads at once. Walks, printing and destruction
// use explicit stacks, so a cause built from thousands of fibers cannot
// overflow a small fiber stack.
#pragma once

#include <fmt/format.h>

#include <exception>
#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "weft/fiber_id.hpp"

namespace weft {

// CauseKind says which kind of node a Cause is (for tree walks).
enum class CauseKind {
  empty,       // nothing went wrong
  fail,        // an exception escaped: exception(), note()
  interrupt,   // a fiber was interrupted: interruptor()
  sequential,  // left() happened, then right() (e.g. a finalizer failed after the body)
  parallel,    // left() and right() happened concurrently (e.g. raced fibers)
};

// Cause is an immutable tree of failures and interruptions, cheap to copy.
class Cause {
 public:
  // Cause() is the empty cause (success); it allocates nothing.
  constexpr Cause() noexcept = default;

  // fail(e, note) is a failure with exception e (non-null, else
  // std::invalid_argument); the optional note (e.g. "in finalizer") is shown by pretty().
  [[nodiscard]] static Cause fail(std::exception_ptr error, std::string_view note = {});
  // interrupt(by) is an interruption requested by fiber `by` (FiberId() if not from a fiber).
  [[nodiscard]] static Cause interrupt(FiberId by);
  // sequential(first, then): `then` happened after `first`; an empty operand yields the other.
  [[nodiscard]] static Cause sequential(Cause first, Cause then);
  // parallel(a, b): a and b happened concurrently; an empty operand yields the other.
  [[nodiscard]] static Cause parallel(Cause a, Cause b);

  // empty() is true when nothing failed and nothing was interrupted.
  bool empty() const noexcept { return node_ == nullptr; }
  // kind() is this node's kind (CauseKind::empty for the empty cause).
  CauseKind kind() const noexcept;
  // exception() is a fail node's exception; null for every other kind.
  std::exception_ptr exception() const noexcept;
  // note() is a fail node's annotation (e.g. "in finalizer"); empty otherwise.
  // It stays valid while this Cause or a copy lives.
  std::string_view note() const noexcept;
  // interruptor() is an interrupt node's interrupter; FiberId() for every other kind.
  FiberId interruptor() const noexcept;
  // left() is a sequential/parallel node's first operand; the empty cause otherwise.
  const Cause& left() const noexcept;
  // right() is a sequential/parallel node's second operand; the empty cause otherwise.
  const Cause& right() const noexcept;

  // failures() lists every failure's exception, depth-first, left to right.
  std::vector<std::exception_ptr> failures() const;
  // interruptors() lists every recorded interrupter, depth-first, left to
  // right, duplicates kept.
  std::vector<FiberId> interruptors() const;
  // has_failure() is true when the tree holds at least one failure (O(1)).
  bool has_failure() const noexcept;
  // has_interrupt() is true when the tree holds at least one interruption (O(1)).
  bool has_interrupt() const noexcept;
  // interrupted_only() is true when the tree holds interruptions and no failure.
  bool interrupted_only() const noexcept { return has_interrupt() && !has_failure(); }

  // failure<E>() is the first failure (depth-first) whose exception is an E or
  // derives from E, or nullptr. E need not derive from std::exception (e.g.
  // `struct ExitCode { int code; }`). The object lives inside the exception_ptr
  // this Cause holds, so the pointer stays valid while this Cause or a copy
  // lives (std::rethrow_exception does not copy on the Itanium C++ ABI).
  template <class E>
  const E* failure() const;

  // pretty() is a human-readable, multi-line tree: exception types and
  // messages, notes, and who interrupted. No trailing newline.
  std::string pretty() const;

 private:
  struct Node;
  explicit Cause(std::shared_ptr<const Node> node) noexcept : node_(std::move(node)) {}
  // combine() builds a sequential or parallel node; an empty operand yields the other.
  static Cause combine(CauseKind kind, Cause left, Cause right);
  // FailureProbe returns the address of the exception object if it has the wanted type.
  using FailureProbe = const void* (*)(const std::exception_ptr&);
  const void* find_failure(FailureProbe probe) const;

  std::shared_ptr<const Node> node_;
};

template <class E>
const E* Cause::failure() const {
  // Captureless, so it converts to a function pointer: the walk stays out of line.
  FailureProbe probe = [](const std::exception_ptr& error) -> const void* {
    try {
      std::rethrow_exception(error);
    } catch (const E& e) {
      return std::addressof(e);
    } catch (...) {
    }
    return nullptr;
  };
  return static_cast<const E*>(find_failure(probe));
}

// operator<< prints the one-line form, e.g. "Fail(std::runtime_error: boom) then Interrupt(#3)".
std::ostream& operator<<(std::ostream& os, const Cause& cause);

// CauseError is thrown where several failures must surface as one exception
// (Exit::value(), Scope::join()); cause() has all of them.
class CauseError : public std::exception {
 public:
  // CauseError(cause) wraps cause; what() is computed now.
  explicit CauseError(Cause cause);
  // cause() is the wrapped cause, with every failure.
  const Cause& cause() const noexcept { return cause_; }
  // what() is "weft: several failures:\n" followed by cause().pretty().
  const char* what() const noexcept override;

 private:
  Cause cause_;
  std::shared_ptr<const std::string> message_;  // shared: copying stays noexcept
};

namespace detail {

// rethrow_cause() turns a non-empty cause into an exception (DESIGN §3.7): the
// original exception when it holds exactly one failure, CauseError when it
// holds several, Interrupted when it holds only interruptions. An empty
// cause throws std::logic_error.
[[noreturn]] void rethrow_cause(const Cause& cause);

// empty_cause() is a never-destroyed empty Cause, for accessors that return a reference.
const Cause& empty_cause() noexcept;

// format_cause() is the one-line form used by fmt and operator<<.
std::string format_cause(const Cause& cause);

// write_to() writes text to os (keeps <ostream> out of the public headers).
std::ostream& write_to(std::ostream& os, std::string_view text);

}  // namespace detail
}  // namespace weft

// fmt::formatter<Cause> prints the one-line form, e.g.
// "Parallel(Fail(std::runtime_error: a), Interrupt(#3))"; accepts string specs.
template <>
struct fmt::formatter<weft::Cause> : fmt::formatter<fmt::string_view> {
  // Writes cause in its one-line form.
  template <class FormatContext>
  auto format(const weft::Cause& cause, FormatContext& ctx) const -> decltype(ctx.out()) {
    return formatter<fmt::string_view>::format(weft::detail::format_cause(cause), ctx);
  }
};
