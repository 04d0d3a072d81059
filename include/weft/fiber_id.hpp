// FiberId: the small value type that names a fiber. Ordered, hashable and
// printable ("#42"); the default value (0) means "no fiber", e.g. an interrupt
// requested from a plain thread.
#pragma once

#include <fmt/format.h>

#include <compare>
#include <cstdint>
#include <functional>
#include <iosfwd>

namespace weft {

// FiberId identifies a fiber for its whole life; ids are never reused by a runtime.
class FiberId {
 public:
  // FiberId() is "no fiber".
  constexpr FiberId() noexcept = default;
  // FiberId(v) names fiber number v (0 is "no fiber").
  constexpr explicit FiberId(std::uint64_t v) noexcept : value_(v) {}

  // value() is the raw number, e.g. for logs and traces.
  constexpr std::uint64_t value() const noexcept { return value_; }
  // true unless this is "no fiber".
  constexpr explicit operator bool() const noexcept { return value_ != 0; }

  // Ids compare by number (so they sort by creation order within a runtime).
  friend constexpr auto operator<=>(FiberId, FiberId) = default;

 private:
  std::uint64_t value_ = 0;
};

// operator<< prints "#42", or "#none" for "no fiber".
std::ostream& operator<<(std::ostream& os, FiberId id);

}  // namespace weft

// std::hash<FiberId> lets ids key unordered containers.
template <>
struct std::hash<weft::FiberId> {
  // Hashes the id's number.
  std::size_t operator()(weft::FiberId id) const noexcept {
    return std::hash<std::uint64_t>{}(id.value());
  }
};

// fmt::formatter<FiberId> prints "#42" ("#none" for "no fiber"); accepts the
// string format specs ("{:>6}").
template <>
struct fmt::formatter<weft::FiberId> : fmt::formatter<fmt::string_view> {
  // Writes the id as "#<number>".
  template <class FormatContext>
  auto format(weft::FiberId id, FormatContext& ctx) const -> decltype(ctx.out()) {
    if (!id) return formatter<fmt::string_view>::format("#none", ctx);
    char text[24] = {'#'};  // '#' + at most 20 digits
    fmt::format_int digits(id.value());
    std::size_t size = 1;
    for (const char* p = digits.data(); p != digits.data() + digits.size(); ++p) text[size++] = *p;
    return formatter<fmt::string_view>::format(fmt::string_view(text, size), ctx);
  }
};
