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

# weft_sanitizer_test_options(<target>): how a test, the test fixtures, an
# example or the fuzzer is compiled under a sanitizer, to keep each
# sanitizer stage of CI within its share of the 40 minutes (compiling the
# tests is most of each stage). Measured on test_race.cpp, g++ 12, -O1:
#   ASan+UBSan with -g                                 49 s
#   ... with -g1                                       36 s
#   ... and without UBSan's alignment and null checks  20 s
#   TSan with -g / -g1                                 18 s / 13 s
# -g1 keeps line tables and inlined frames, so a sanitizer report still
# names every frame with its file and line; what goes is the description of
# locals and types, which no report prints. UBSan's `alignment` and `null`
# checks (one combined check before every load and store through a
# pointer or reference) stay on in the library, where weft's own pointer
# and allocation code lives (src/: control blocks, stacks, block pools,
# intrusive lists), in tests/support (the program interpreter) and in the
# fuzz stage (clang, every UBSan check, on the library and the
# interpreter); in the test files ASan itself still faults any access
# through a null or wild pointer. The library keeps -g: tools/gdb/weft.py
# reads its types (test_gdb), and a debugger stepping into weft sees all.
function(weft_sanitizer_test_options target)
  if(NOT WEFT_SANITIZE OR NOT CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    return()
  endif()
  target_compile_options(${target} PRIVATE $<$<CONFIG:RelWithDebInfo,Debug>:-g1>)
  if(WEFT_SANITIZE STREQUAL "address")
    if(NOT target STREQUAL "weft_test_support" AND NOT target STREQUAL "fuzz_program")
      # On the sources, not the target: a source's options come after the
      # -fsanitize=address,undefined that weft passes on (a later
      # -fsanitize=undefined would turn both checks back on).
      get_target_property(sources ${target} SOURCES)
      set_property(SOURCE ${sources} APPEND PROPERTY COMPILE_OPTIONS -fno-sanitize=alignment,null)
    endif()
  endif()
endfunction()
