// WEFT_ASSERT: internal invariants. Prints with fmt and aborts when
// WEFT_DEBUG_ASSERTS is defined (the dev, asan and tsan presets); compiles to
// nothing otherwise. Misuse by users is never an assertion only: it throws.
#pragma once

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>

namespace weft::detail {

[[noreturn]] inline void assert_fail(const char* expr, const char* file, int line,
                                     const std::string& message) {
  std::fprintf(stderr, "weft: assertion `%s` failed at %s:%d: %s\n", expr, file, line,
               message.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace weft::detail

#ifdef WEFT_DEBUG_ASSERTS
#define WEFT_ASSERT(cond, ...)                                                        \
  do {                                                                                \
    if (!(cond)) [[unlikely]]                                                         \
      ::weft::detail::assert_fail(#cond, __FILE__, __LINE__, fmt::format(__VA_ARGS__)); \
  } while (0)
#else
#define WEFT_ASSERT(cond, ...) \
  do {                         \
  } while (0)
#endif

// WEFT_CHECK: like WEFT_ASSERT but always on (cheap checks guarding against
// memory corruption, e.g. a stack canary).
#define WEFT_CHECK(cond, ...)                                                         \
  do {                                                                                \
    if (!(cond)) [[unlikely]]                                                         \
      ::weft::detail::assert_fail(#cond, __FILE__, __LINE__, fmt::format(__VA_ARGS__)); \
  } while (0)
