// Cause: why a fiber did not succeed, as an immutable tree (after ZIO's
// `Cause` and Effect-TS's `Cause`). Leaves are failures (an exception that
// escaped) and interruptions (who interrupted); inner nodes say whether two
// causes happened one after the other (a finalizer failed after the body) or
// side by side (two raced fibers both failed).
//
// Every leaf may carry a Site: the fiber whose body or finalizer threw (a
// failure) or the fiber that was interrupted (an interruption), so pretty()
// says which of a hundred children failed. The runtime records it for every
// Exit it publishes; a cause built by hand (Cause::fail(e)) has none.
//
// A CauseError never nests inside a Cause: Cause::fail() of a CauseError is
// the cause it carries, so a failure that travels child -> join() ->
// CauseError -> parent keeps its leaves (and their sites), and failures(),
// failure<E>() and interruptors() see through any chain of joins.
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
  // Site names the fiber where a leaf happened: for a failure, the fiber whose
  // body or finalizer threw; for an interruption, the fiber interrupted.
  struct Site {
    FiberId fiber;     // FiberId() when none was recorded (a cause built by hand)
    std::string name;  // that fiber's ForkOptions::name; "" when it had none
    // Sites compare by fiber and name.
    friend bool operator==(const Site&, const Site&) = default;
  };

  // Cause() is the empty cause (success); it allocates nothing.
  constexpr Cause() noexcept = default;

  // fail(e, note) is a failure with exception e (non-null, else
  // std::invalid_argument); the optional note (e.g. "in finalizer") is shown
  // by pretty(). It records no Site. If e is a CauseError carrying a
  // non-empty cause, the result is that cause (no wrapper; a leaf without a
  // note gets `note`); if e is the exception that rethrow_cause() (so
  // Exit::value(), join()) last rethrew in the calling fiber from a
  // one-failure cause, the result is that cause's leaf, with its Site. So
  // kind() need not be fail.
  [[nodiscard]] static Cause fail(std::exception_ptr error, std::string_view note = {});
  // fail(e, note, where) is fail(e, note) recorded at `where`; a leaf it
  // unwraps keeps its own Site, and gets `where` only when it has none.
  [[nodiscard]] static Cause fail(std::exception_ptr error, std::string_view note, Site where);
  // interrupt(by) is an interruption requested by fiber `by` (FiberId() if not from a fiber).
  [[nodiscard]] static Cause interrupt(FiberId by);
  // interrupt(by, interrupted) is interrupt(by) that landed in fiber `interrupted`.
  [[nodiscard]] static Cause interrupt(FiberId by, Site interrupted);
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
  // site() is a leaf's Site (the failing or interrupted fiber); an empty Site
  // for other kinds and for leaves without one. It stays valid while this
  // Cause or a copy lives.
  const Site& site() const noexcept;
  // left() is a sequential/parallel node's first operand; the empty cause otherwise.
  const Cause& left() const noexcept;
  // right() is a sequential/parallel node's second operand; the empty cause otherwise.
  const Cause& right() const noexcept;

  // failures() lists every failure's exception, depth-first, left to right.
  std::vector<std::exception_ptr> failures() const;
  // interruptors() lists every recorded interrupter, depth-first, left to
  // right, duplicates kept.
  std::vector<FiberId> interruptors() const;
  // failure_sites() is the Site of each failure, in the order of failures().
  std::vector<Site> failure_sites() const;
  // interrupt_sites() is the interrupted fiber of each interruption, in the
  // order of interruptors().
  std::vector<Site> interrupt_sites() const;
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
  // messages, notes, who interrupted, and the fiber (id and name) each leaf
  // happened in, e.g. "Fail in fiber #12 'user-3': DbError: timeout". No
  // trailing newline.
  std::string pretty() const;

 private:
  struct Node;
  explicit Cause(std::shared_ptr<const Node> node) noexcept : node_(std::move(node)) {}
  // combine() builds a sequential or parallel node; an empty operand yields the other.
  static Cause combine(CauseKind kind, Cause left, Cause right);
  // make_leaf() builds a fail or interrupt node.
  static Cause make_leaf(CauseKind kind, std::exception_ptr error, std::string_view note,
                         FiberId by, Site where);
  // with_defaults() is cause with `where` given to every leaf without a Site
  // and `note` to every failure without a note (the tree is shared when
  // nothing changes).
  static Cause with_defaults(const Cause& cause, std::string_view note, const Site& where);
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

// operator<< prints the one-line form, e.g. "Fail(#5 'db': std::runtime_error: boom) then
// Interrupt(#3 in #5 'db')"; line breaks in messages and names print as "\n".
std::ostream& operator<<(std::ostream& os, const Cause& cause);

// CauseError is thrown where several failures must surface as one exception
// (Exit::value(), Scope::join()); cause() has all of them. When it escapes a
// fiber, the fiber's cause is cause() itself (see Cause::fail), not a
// failure holding a CauseError.
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
// cause throws std::logic_error. In a fiber, it remembers the leaf of the
// original exception it rethrows (one per fiber, until the next rethrow or
// the fiber's end), so that Cause::fail() of that exception (it escapes the
// fiber) is the same leaf, Site included, and not a new one.
[[noreturn]] void rethrow_cause(const Cause& cause);

// empty_cause() is a never-destroyed empty Cause, for accessors that return a reference.
const Cause& empty_cause() noexcept;

// format_cause() is the one-line form used by fmt and operator<<.
std::string format_cause(const Cause& cause);

// write_to() writes text to os (keeps <ostream> out of the public headers).
std::ostream& write_to(std::ostream& os, std::string_view text);

}  // namespace detail
}  // namespace weft

// fmt::formatter<Cause> prints the one-line form (never a line break), e.g.
// "Parallel(Fail(#4 'a': std::runtime_error: a), Interrupt(#3 in #5))"; a
// leaf without a Site prints without it ("Fail(std::runtime_error: a)",
// "Interrupt(#3)"). Accepts string specs.
template <>
struct fmt::formatter<weft::Cause> : fmt::formatter<fmt::string_view> {
  // Writes cause in its one-line form.
  template <class FormatContext>
  auto format(const weft::Cause& cause, FormatContext& ctx) const -> decltype(ctx.out()) {
    return formatter<fmt::string_view>::format(weft::detail::format_cause(cause), ctx);
  }
};
