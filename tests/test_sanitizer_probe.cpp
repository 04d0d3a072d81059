// The sanitizer stages must really be instrumented: this probe fails if the
// asan/tsan presets ever stop passing the flags through to the tests.
#include <gtest/gtest.h>

#include <cstdlib>

namespace {

#if defined(WEFT_ASAN)
[[gnu::noinline]] int read_past_end(volatile int* p, int n) { return p[n]; }

TEST(SanitizerProbeDeathTest, test_sanitizer_probe_asan_catches_heap_overflow) {
  EXPECT_DEATH(
      {
        auto* p = static_cast<volatile int*>(std::malloc(4 * sizeof(int)));
        std::exit(read_past_end(p, 4));
      },
      "AddressSanitizer: heap-buffer-overflow");
}

// UBSan is on in the test files too (cmake/sanitizers.cmake leaves out only
// its alignment and null checks there). The child exits non-zero whether or
// not UBSAN_OPTIONS says halt_on_error; the report must be there either way.
[[gnu::noinline]] int add(int a, int b) { return a + b; }

TEST(SanitizerProbeDeathTest, test_sanitizer_probe_ubsan_catches_signed_overflow) {
  EXPECT_DEATH(
      {
        volatile int max = 2147483647;  // not folded at compile time
        const int sum = add(max, 1);
        std::exit(sum == 0 ? 2 : 1);
      },
      "runtime error: signed integer overflow");
}
#elif defined(WEFT_TSAN)
TEST(SanitizerProbe, test_sanitizer_probe_tsan_is_compiled_in) {
#if defined(__SANITIZE_THREAD__)
  SUCCEED();
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
  SUCCEED();
#else
  FAIL() << "WEFT_TSAN is defined but the code is not compiled with -fsanitize=thread";
#endif
#else
  FAIL() << "WEFT_TSAN is defined but the code is not compiled with -fsanitize=thread";
#endif
}
#else
TEST(SanitizerProbe, test_sanitizer_probe_plain_build) { GTEST_SKIP() << "not a sanitizer build"; }
#endif

}  // namespace
