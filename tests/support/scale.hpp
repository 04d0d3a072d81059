// Test sizes and the memory budget of a test under the sanitizers.
//
// The asan and tsan presets define WEFT_ASAN / WEFT_TSAN (cmake/sanitizers.cmake;
// the compiler's own feature macros count as well). Under them a test runs
// 2-15x slower and memory costs more (ASan: shadow, quarantine, fake stacks;
// TSan: several shadow bytes per touched byte), so the few heavy tests take a
// smaller size there through scaled(). Each call site says why its sanitized
// size still checks what the test is about; the full size runs in the dev
// stage. The loops that hunt for a rare interleaving run a fifth of their
// rounds under TSan only (race_rounds()). scripts/test.sh and README.md list
// what runs at which size.
//
// Every test process is held to kRssBudgetMiB of peak RSS: a test that ends
// above it fails (rss_budget.cpp), so a test that grows is caught before it
// can exhaust a shared machine.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT_TEST_COMPILER_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define WEFT_TEST_COMPILER_TSAN 1
#endif
#endif

namespace weft::test {

#if defined(WEFT_ASAN) || defined(__SANITIZE_ADDRESS__) || defined(WEFT_TEST_COMPILER_ASAN)
inline constexpr bool kAsan = true;
#else
inline constexpr bool kAsan = false;
#endif

#if defined(WEFT_TSAN) || defined(__SANITIZE_THREAD__) || defined(WEFT_TEST_COMPILER_TSAN)
inline constexpr bool kTsan = true;
#else
inline constexpr bool kTsan = false;
#endif

// kSanitized: built with ASan+UBSan or TSan.
inline constexpr bool kSanitized = kAsan || kTsan;

// scaled() is `full` in an uninstrumented build and `sanitized` under ASan or TSan.
constexpr std::uint64_t scaled(std::uint64_t full, std::uint64_t sanitized) {
  return kSanitized ? sanitized : full;
}

// scaled() with a size per sanitizer: `full`, else `asan` or `tsan`.
constexpr std::uint64_t scaled(std::uint64_t full, std::uint64_t asan, std::uint64_t tsan) {
  return kAsan ? asan : kTsan ? tsan : full;
}

// race_rounds() is the round count of a loop that hunts for a rare
// interleaving (a wake-up against an interrupt or a deadline, a destroy
// against a call still returning) and checks each round's outcome: `full` in
// the dev and ASan builds, a fifth of it under TSan, never fewer than
// kMinRaceRounds (or `full`, if smaller). TSan needs no hunt: it reports a
// data race from one execution whose accesses happen-before leaves
// unordered, however the timing fell; the hunt and its outcomes belong to
// the dev and ASan stages, which run every round. And a round costs 7-10x
// more under TSan than under ASan (each fiber made gets a TSan fiber).
inline constexpr std::uint64_t kMinRaceRounds = 50;

template <std::integral T>
constexpr T race_rounds(T full) {
  if (!kTsan) return full;
  const T floor = full < static_cast<T>(kMinRaceRounds) ? full : static_cast<T>(kMinRaceRounds);
  return full / 5 > floor ? full / 5 : floor;
}

// kRssBudgetMiB is the peak RSS a test process may reach (ctest runs one test
// per process, two at a time): 2 GiB under a sanitizer; 6 GiB in an
// uninstrumented build, where the million-scale tests need ~4.7 GB (they run
// alone: RUN_SERIAL in cmake/tests.cmake). WEFT_TEST_RSS_BUDGET_MB overrides
// it (0: no check).
inline constexpr std::size_t kRssBudgetMiB = kSanitized ? 2048 : 6144;

}  // namespace weft::test
