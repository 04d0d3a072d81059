// Exit<T>: how a fiber ended (DESIGN §1 "Exit and Cause", §3.7) — a success
// holding a T, or a non-empty Cause (failures and/or interruptions). Exit<void>
// is the same without a value. value() turns a failure back into an exception:
// the original one when there is exactly one failure, CauseError when there are
// several, Interrupted when the fiber was only interrupted. Such an exception
// escaping another fiber gives that fiber the same cause back (Cause::fail),
// failures and their fibers included: value() -> throw -> Exit round-trips.
#pragma once

#include <fmt/format.h>

#include <iosfwd>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "weft/cause.hpp"
#include "weft/detail/assert.hpp"
#include "weft/interrupted.hpp"

namespace weft {

template <class T>
class Exit;

namespace detail {

// ExitBase holds what Exit<T> and Exit<void> share: the state (Value or Cause)
// and the queries. Value is T, or std::monostate for Exit<void>.
// Invariant: the Cause alternative is never empty.
template <class Value>
class ExitBase {
 public:
  // ok() is true on success.
  bool ok() const noexcept { return state_.index() == 0; }
  // failed() is true when the cause holds at least one failure.
  bool failed() const noexcept { return !ok() && std::get_if<1>(&state_)->has_failure(); }
  // interrupted() is true when the cause holds interruptions and no failure.
  bool interrupted() const noexcept { return !ok() && std::get_if<1>(&state_)->interrupted_only(); }
  // cause() is why the fiber did not succeed; the empty cause on success.
  const Cause& cause() const noexcept { return ok() ? empty_cause() : *std::get_if<1>(&state_); }

 protected:
  template <class... Args>
  explicit ExitBase(std::in_place_index_t<0> tag, Args&&... args)
      : state_(tag, std::forward<Args>(args)...) {}
  explicit ExitBase(Cause cause) : state_(std::in_place_index<1>, std::move(cause)) {
    WEFT_ASSERT(!std::get_if<1>(&state_)->empty(), "Exit::failure() needs a non-empty cause");
    if (std::get_if<1>(&state_)->empty()) {
      throw std::invalid_argument("weft: Exit::failure() needs a non-empty cause");
    }
  }

  // throw_unless_ok() rethrows the cause (see rethrow_cause) unless ok().
  void throw_unless_ok() const {
    if (!ok()) rethrow_cause(*std::get_if<1>(&state_));
  }

  std::variant<Value, Cause> state_;  // index 0: success, 1: failure (by index: Value may be Cause)
};

// describe_exit_failure() is "Exit(failed: <cause>)" or "Exit(interrupted: <cause>)".
std::string describe_exit_failure(const Cause& cause);

// is_optional<T> is true for std::optional<U>: fmt 9 cannot print it, Exit does.
template <class T>
inline constexpr bool is_optional = false;
template <class U>
inline constexpr bool is_optional<std::optional<U>> = true;

// describe_exit() is the text printed by fmt and operator<< for an Exit.
template <class T>
std::string describe_exit(const Exit<T>& exit) {
  if (!exit.ok()) return describe_exit_failure(exit.cause());
  if constexpr (std::is_void_v<T>) {
    return "Exit(ok)";
  } else if constexpr (is_optional<T>) {  // before is_formattable: one spelling with any fmt
    const T& value = *exit.value_if();
    if (!value.has_value()) return "Exit(ok: nullopt)";
    if constexpr (fmt::is_formattable<typename T::value_type>::value) {
      return fmt::format("Exit(ok: {})", *value);
    } else {
      return "Exit(ok)";
    }
  } else if constexpr (fmt::is_formattable<T>::value) {
    return fmt::format("Exit(ok: {})", *exit.value_if());
  } else {
    return "Exit(ok)";
  }
}

}  // namespace detail

// Exit<T> is how a fiber returning T ended: a value, or a Cause.
template <class T>
class [[nodiscard("an Exit holds how a fiber ended, failure included")]] Exit
    : public detail::ExitBase<T> {
  static_assert(!std::is_reference_v<T>, "Exit<T&> is not supported: use std::reference_wrapper");
  static_assert(!std::is_array_v<T>, "Exit<T[N]> is not supported: use std::array");
  using Base = detail::ExitBase<T>;

 public:
  // success(value) is a successful end with value.
  [[nodiscard]] static Exit success(T value) {
    return Exit(std::in_place_index<0>, std::move(value));
  }
  // failure(cause) is an unsuccessful end; cause must not be empty (asserted in
  // debug builds, std::invalid_argument otherwise).
  [[nodiscard]] static Exit failure(Cause cause) { return Exit(std::move(cause)); }

  // value() is the success value; otherwise rethrows: the original exception
  // (one failure), CauseError (several), Interrupted (interruption only).
  T& value() & {
    this->throw_unless_ok();
    return *std::get_if<0>(&this->state_);
  }
  // value() is the success value; otherwise rethrows like value() &.
  const T& value() const& {
    this->throw_unless_ok();
    return *std::get_if<0>(&this->state_);
  }
  // value() moves the success value out (move-only T); otherwise rethrows like value() &.
  T&& value() && {
    this->throw_unless_ok();
    return std::move(*std::get_if<0>(&this->state_));
  }

  // value_if() is the success value, or nullptr unless ok(); never throws.
  T* value_if() noexcept { return std::get_if<0>(&this->state_); }
  // value_if() is the success value, or nullptr unless ok(); never throws.
  const T* value_if() const noexcept { return std::get_if<0>(&this->state_); }

 private:
  using Base::Base;
};

// Exit<void> is how a fiber returning void ended: success, or a Cause.
template <>
class [[nodiscard("an Exit holds how a fiber ended, failure included")]] Exit<void>
    : public detail::ExitBase<std::monostate> {
  using Base = detail::ExitBase<std::monostate>;

 public:
  // success() is a successful end.
  [[nodiscard]] static Exit success() { return Exit(std::in_place_index<0>); }
  // failure(cause) is an unsuccessful end; cause must not be empty (asserted in
  // debug builds, std::invalid_argument otherwise).
  [[nodiscard]] static Exit failure(Cause cause) { return Exit(std::move(cause)); }

  // value() returns on success; otherwise rethrows: the original exception
  // (one failure), CauseError (several), Interrupted (interruption only).
  void value() const { throw_unless_ok(); }

 private:
  using Base::Base;
};

// operator<< prints like fmt: "Exit(ok: 42)", "Exit(ok: nullopt)", "Exit(failed: Fail(...))",
// "Exit(interrupted: ...)".
template <class T>
std::ostream& operator<<(std::ostream& os, const Exit<T>& exit) {
  return detail::write_to(os, detail::describe_exit(exit));
}

}  // namespace weft

// fmt::formatter<Exit<T>> prints "Exit(ok: <value>)" (when T is formattable,
// else "Exit(ok)"; a std::optional prints its value or "nullopt"),
// "Exit(failed: <cause>)" or "Exit(interrupted: <cause>)", on one line.
template <class T>
struct fmt::formatter<weft::Exit<T>> : fmt::formatter<fmt::string_view> {
  // Writes exit as described above; accepts string specs.
  template <class FormatContext>
  auto format(const weft::Exit<T>& exit, FormatContext& ctx) const -> decltype(ctx.out()) {
    return formatter<fmt::string_view>::format(weft::detail::describe_exit(exit), ctx);
  }
};
