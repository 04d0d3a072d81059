# Tests (developer mode): one GoogleTest executable per tests/test_*.cpp, each
# labelled with its file name so a stage can leave it out (ctest -LE), plus
# the install-and-consume check of the CMake package.

# Shared fixtures (leak-checking fixture, latches, ...) under tests/support/.
file(GLOB weft_test_support_sources CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/tests/support/*.cpp")
list(FILTER weft_test_support_sources EXCLUDE REGEX "/rss_budget\\.cpp$")
if(weft_test_support_sources)
  add_library(weft_test_support STATIC ${weft_test_support_sources})
  target_include_directories(weft_test_support PUBLIC "${PROJECT_SOURCE_DIR}/tests")
  # The fixtures read a fiber's run state, which is src-private.
  target_include_directories(weft_test_support PRIVATE "${PROJECT_SOURCE_DIR}/src")
  target_link_libraries(weft_test_support PUBLIC weft GTest::gtest GTest::gmock)
  weft_target_warnings(weft_test_support)
  weft_sanitizer_test_options(weft_test_support)
else()
  add_library(weft_test_support INTERFACE)
  target_include_directories(weft_test_support INTERFACE "${PROJECT_SOURCE_DIR}/tests")
  target_link_libraries(weft_test_support INTERFACE weft GTest::gtest GTest::gmock)
endif()

# The peak-RSS budget of every test (tests/support/scale.hpp): a GoogleTest
# listener that registers itself before main(), so an object library (a
# static library would drop it: nothing refers to it).
add_library(weft_test_rss_budget OBJECT "${PROJECT_SOURCE_DIR}/tests/support/rss_budget.cpp")
target_include_directories(weft_test_rss_budget PRIVATE "${PROJECT_SOURCE_DIR}/tests")
# weft: the sanitizer flags and WEFT_ASAN / WEFT_TSAN, which choose the budget.
target_link_libraries(weft_test_rss_budget PRIVATE weft GTest::gtest)
weft_target_warnings(weft_test_rss_budget)
weft_sanitizer_test_options(weft_test_rss_budget)

# weft_test_pch: the tests' precompiled header (WEFT_TEST_PCH, on by
# default). GoogleTest, <weft/weft.hpp>, the fixture header and the standard
# headers most tests include are parsed once per build instead of once per
# test file: ~3.5 s of every test's compile, whatever the flags (test_latch.cpp
# in dev 11.6 -> 6.9 s, under ASan+UBSan 20 -> 17 s; 58 files, three stages).
# Every test reuses it (REUSE_FROM), so a test needs the flags this target has;
# CMake passes -Winvalid-pch with it, which turns a PCH the compiler would
# silently skip (a flag that drifted) into a warning, an error under
# WEFT_WERROR. Off, each test parses its own includes, as a user's file does.
option(WEFT_TEST_PCH "Precompile the headers every test includes (developer mode)" ON)
if(WEFT_TEST_PCH)
  set(weft_test_pch_source "${PROJECT_BINARY_DIR}/weft_test_pch.cpp")
  file(CONFIGURE OUTPUT "${weft_test_pch_source}"
    CONTENT "// The precompiled header's own translation unit (cmake/tests.cmake).\n" @ONLY)
  add_library(weft_test_pch OBJECT "${weft_test_pch_source}")
  target_include_directories(weft_test_pch PRIVATE "${PROJECT_SOURCE_DIR}/src")
  target_link_libraries(weft_test_pch PRIVATE
    weft weft_test_support GTest::gtest GTest::gmock)
  weft_target_warnings(weft_test_pch)
  weft_sanitizer_test_options(weft_test_pch)
  target_precompile_headers(weft_test_pch PRIVATE
    <algorithm> <atomic> <chrono> <functional> <latch> <memory> <mutex> <optional>
    <stdexcept> <string> <thread> <vector>
    <gtest/gtest.h> <gmock/gmock.h> <weft/weft.hpp>
    "${PROJECT_SOURCE_DIR}/tests/support/weft_test.hpp"
    "${PROJECT_SOURCE_DIR}/tests/support/scale.hpp")
endif()

# weft_use_test_pch(<target>): <target> reuses the tests' precompiled header.
function(weft_use_test_pch target)
  if(WEFT_TEST_PCH)
    target_precompile_headers(${target} REUSE_FROM weft_test_pch)
  endif()
endfunction()

# The million-scale tests (test_million; test_stack_pool's million stacks)
# need ~4.7 GB each at full size: in an uninstrumented build they run alone,
# not next to each other under ctest -j2. Under a sanitizer they are scaled
# down (tests/support/scale.hpp) and may run alongside.
set(weft_large_tests test_million test_stack_pool)

# TIMEOUT: a hang fails the test instead of eating the CI budget. The
# slowest tests take ~75 s on 2 busy cores (test_replay in dev and under
# ASan), so 600 s leaves room for a machine several times slower. The test
# presets give the same default to tests that set none.
file(GLOB weft_test_sources CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/tests/test_*.cpp")
foreach(source IN LISTS weft_test_sources)
  get_filename_component(name "${source}" NAME_WE)
  add_executable(${name} "${source}")
  weft_asio_sanitizer_options("${source}")
  # Tests may reach internals (deques, timers) through src/.
  target_include_directories(${name} PRIVATE "${PROJECT_SOURCE_DIR}/src")
  target_link_libraries(${name} PRIVATE
    weft weft_test_support weft_test_rss_budget GTest::gtest_main GTest::gtest GTest::gmock)
  weft_target_warnings(${name})
  weft_sanitizer_test_options(${name})  # cmake/sanitizers.cmake
  weft_use_test_pch(${name})
  set(serial OFF)
  if(name IN_LIST weft_large_tests AND NOT WEFT_SANITIZE)
    set(serial ON)
  endif()
  gtest_discover_tests(${name}
    DISCOVERY_MODE PRE_TEST
    DISCOVERY_TIMEOUT 120
    PROPERTIES TIMEOUT 600 RUN_SERIAL ${serial} LABELS ${name})
endforeach()

# test_install_consumer: install this build into a scratch prefix, then
# configure, build and run tests/consumer against it with the same compiler.
if(WEFT_INSTALL)
  add_test(NAME test_install_consumer
    COMMAND "${CMAKE_COMMAND}"
      "-DWEFT_BINARY_DIR=${PROJECT_BINARY_DIR}"
      "-DCONSUMER_SOURCE_DIR=${PROJECT_SOURCE_DIR}/tests/consumer"
      "-DWORK_DIR=${PROJECT_BINARY_DIR}/test_install_consumer"
      "-DCXX_COMPILER=${CMAKE_CXX_COMPILER}"
      "-DGENERATOR=${CMAKE_GENERATOR}"
      "-DBUILD_TYPE=${CMAKE_BUILD_TYPE}"
      -P "${PROJECT_SOURCE_DIR}/cmake/install_consumer_test.cmake")
  set_tests_properties(test_install_consumer PROPERTIES TIMEOUT 600 LABELS test_install_consumer)
endif()

# ---- test_trace_viewer (issue 14): tools/weft-trace renders
# tests/data/sample_trace.json into one self-contained HTML page. A Python 3
# script, standard library only (scripts/deps.sh installs python3); it builds
# nothing and needs no C++ target.
find_package(Python3 REQUIRED COMPONENTS Interpreter)
add_test(NAME test_trace_viewer
  COMMAND "${Python3_EXECUTABLE}" "${PROJECT_SOURCE_DIR}/tests/test_trace_viewer.py")
set_tests_properties(test_trace_viewer PROPERTIES TIMEOUT 120 LABELS test_trace_viewer)
# ---- end test_trace_viewer

# ---- test_gdb (issue 14): tools/gdb/weft.py
# test_gdb runs gdb with the extension against gdb_parked_fiber (a runtime
# with parked fibers that stops at a breakpoint), live and from a core file.
# The definitions tell it where the program and the script are.
add_executable(gdb_parked_fiber "${PROJECT_SOURCE_DIR}/tests/gdb/parked_fiber.cpp")
target_include_directories(gdb_parked_fiber PRIVATE "${PROJECT_SOURCE_DIR}/src")
target_link_libraries(gdb_parked_fiber PRIVATE weft)
weft_target_warnings(gdb_parked_fiber)
add_dependencies(test_gdb gdb_parked_fiber)
target_compile_definitions(test_gdb PRIVATE
  "WEFT_GDB_PROGRAM=\"$<TARGET_FILE:gdb_parked_fiber>\""
  "WEFT_GDB_SCRIPT=\"${PROJECT_SOURCE_DIR}/tools/gdb/weft.py\"")
# ---- end test_gdb
