// weft::source_location: the call site every blocking call records (a
// defaulted argument) for Runtime::dump() and traces.
//
// It is std::source_location where the standard library has it. libstdc++
// 12 under clang 14 has no std::source_location (it needs a builtin that
// clang 14 lacks), so there it is a class with the same interface, filled
// by the __builtin_FILE/LINE/FUNCTION builtins that g++ and clang share.
#pragma once

#include <version>

#include <atomic>
#include <cstdint>

#if defined(__cpp_lib_source_location)
#include <source_location>
#endif

namespace weft {

#if defined(__cpp_lib_source_location)
using source_location = std::source_location;
#else
class source_location {
 public:
  static constexpr source_location current(const char* file = __builtin_FILE(),
                                           const char* function = __builtin_FUNCTION(),
                                           std::uint_least32_t line = __builtin_LINE()) noexcept {
    source_location s;
    s.file_ = file;
    s.function_ = function;
    s.line_ = line;
    return s;
  }
  constexpr source_location() noexcept = default;
  constexpr std::uint_least32_t line() const noexcept { return line_; }
  constexpr std::uint_least32_t column() const noexcept { return 0; }
  constexpr const char* file_name() const noexcept { return file_; }
  constexpr const char* function_name() const noexcept { return function_; }

 private:
  const char* file_ = "";
  const char* function_ = "";
  std::uint_least32_t line_ = 0;
};
#endif

namespace detail {

#if defined(__cpp_lib_source_location)
// SiteSlot holds a fiber's last call site: std::source_location is one
// pointer, so a lock-free atomic.
using SiteSlot = std::atomic<source_location>;
static_assert(SiteSlot::is_always_lock_free);
inline void store_site(SiteSlot& slot, source_location s) noexcept {
  slot.store(s, std::memory_order_relaxed);
}
inline source_location load_site(const SiteSlot& slot) noexcept {
  return slot.load(std::memory_order_relaxed);
}
#else
// SiteSlot holds a fiber's last call site as three relaxed atomics (a
// reader may see parts of two sites: a diagnostic).
struct SiteSlot {
  std::atomic<const char*> file{""};
  std::atomic<const char*> function{""};
  std::atomic<std::uint_least32_t> line{0};
};
inline void store_site(SiteSlot& slot, source_location s) noexcept {
  slot.file.store(s.file_name(), std::memory_order_relaxed);
  slot.function.store(s.function_name(), std::memory_order_relaxed);
  slot.line.store(s.line(), std::memory_order_relaxed);
}
inline source_location load_site(const SiteSlot& slot) noexcept {
  return source_location::current(slot.file.load(std::memory_order_relaxed),
                                  slot.function.load(std::memory_order_relaxed),
                                  slot.line.load(std::memory_order_relaxed));
}
#endif

}  // namespace detail
}  // namespace weft
