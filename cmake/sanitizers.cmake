# WEFT_SANITIZE: "" | address (ASan + UBSan) | thread (TSan).
# The flags become PUBLIC usage requirements of weft (see library.cmake), so
# everything that links weft -- tests, benchmarks, examples, the header check,
# and consumers of an installed sanitizer build -- is instrumented alike.
# WEFT_ASAN / WEFT_TSAN let the sources annotate Boost.Context switches.

set(WEFT_SANITIZER_FLAGS "")
set(WEFT_SANITIZER_DEFINITIONS "")

if(WEFT_SANITIZE STREQUAL "address")
  set(WEFT_SANITIZER_FLAGS -fsanitize=address,undefined -fno-omit-frame-pointer)
  set(WEFT_SANITIZER_DEFINITIONS WEFT_ASAN=1)
elseif(WEFT_SANITIZE STREQUAL "thread")
  set(WEFT_SANITIZER_FLAGS -fsanitize=thread -fno-omit-frame-pointer)
  set(WEFT_SANITIZER_DEFINITIONS WEFT_TSAN=1)
elseif(NOT WEFT_SANITIZE STREQUAL "")
  message(FATAL_ERROR "WEFT_SANITIZE must be empty, \"address\" or \"thread\", not \"${WEFT_SANITIZE}\"")
endif()

if(WEFT_SANITIZE)
  message(STATUS "weft: sanitizer build (${WEFT_SANITIZE}): ${WEFT_SANITIZER_FLAGS}")
endif()
