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

# weft_asio_sanitizer_options(<source>): a source that includes the Asio
# bridge (<weft/asio.hpp>) instantiates Asio, which calls
# std::atomic_thread_fence (its fenced blocks and its executors' reference
# counts). ThreadSanitizer does not model standalone fences and g++ says so
# with -Wtsan, an error under WEFT_WERROR. weft's own code keeps its fences
# out of TSan builds (src/scheduler/chase_lev_deque.hpp); Asio's cannot be,
# so for those sources alone the TSan build turns -Wtsan off. The flag
# changes no generated code, only the note; a race TSan reports inside Asio
# must still be checked against those fences (docs/internals.md, "The Asio
# bridge").
function(weft_asio_sanitizer_options source)
  if(WEFT_SANITIZE STREQUAL "thread" AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    file(STRINGS "${source}" asio_includes REGEX "#include <weft/(detail/)?asio")
    if(asio_includes)
      set_property(SOURCE "${source}" APPEND PROPERTY COMPILE_OPTIONS -Wno-tsan)
    endif()
  endif()
endfunction()
