// Which sanitizer hooks the context module compiles in (private to
// src/context/). The asan/tsan presets define WEFT_ASAN / WEFT_TSAN; the
// compiler's own feature macros turn the hooks on as well, so a sanitized
// build that forgot the define does not report false positives on every
// fiber switch. Only the context module (src/context/*.cpp and its tests) may
// include this header: the annotations live in this module and nowhere else
// (STYLE.md, "Sanitizers").
#pragma once

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT_DETAIL_COMPILER_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define WEFT_DETAIL_COMPILER_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define WEFT_DETAIL_COMPILER_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define WEFT_DETAIL_COMPILER_TSAN 1
#endif

#if defined(WEFT_ASAN) || defined(WEFT_DETAIL_COMPILER_ASAN)
#define WEFT_CONTEXT_ASAN 1
#else
#define WEFT_CONTEXT_ASAN 0
#endif

#if defined(WEFT_TSAN) || defined(WEFT_DETAIL_COMPILER_TSAN)
#define WEFT_CONTEXT_TSAN 1
#else
#define WEFT_CONTEXT_TSAN 0
#endif

// Both g++ 12 and clang 14 ship these declarations in
// <sanitizer/common_interface_defs.h> (via asan_interface.h) and
// <sanitizer/tsan_interface.h>; checked when this module was written.
#if WEFT_CONTEXT_ASAN
#include <sanitizer/asan_interface.h>
#endif
#if WEFT_CONTEXT_TSAN
#include <sanitizer/tsan_interface.h>
#endif
