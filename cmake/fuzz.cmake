# WEFT_FUZZ: the libFuzzer target tests/fuzz/fuzz_program.cpp and its bounded
# ctest run (label fuzz_program). Needs clang++ (libFuzzer), developer mode
# (tests/support) and WEFT_SANITIZE=address: the fuzz preset sets all three.
# Everything that links weft gets -fsanitize=fuzzer-no-link (coverage
# feedback, a PUBLIC usage requirement like the sanitizer flags); only
# fuzz_program links libFuzzer's main (-fsanitize=fuzzer).

if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "WEFT_FUZZ needs clang++ (libFuzzer), not ${CMAKE_CXX_COMPILER_ID}: use the fuzz preset")
endif()
if(NOT WEFT_DEVELOPER_MODE)
  message(FATAL_ERROR "WEFT_FUZZ needs WEFT_DEVELOPER_MODE (the program interpreter is in tests/support)")
endif()
if(NOT WEFT_SANITIZE STREQUAL "address")
  message(FATAL_ERROR "WEFT_FUZZ needs WEFT_SANITIZE=address (ASan+UBSan), not \"${WEFT_SANITIZE}\"")
endif()

set(WEFT_FUZZ_SECONDS 60 CACHE STRING "How long the fuzz_program ctest test fuzzes, in seconds")
set(WEFT_FUZZ_SEED 1 CACHE STRING "libFuzzer -seed of the fuzz_program ctest test (0: random, printed)")

target_compile_options(weft PUBLIC -fsanitize=fuzzer-no-link)

add_executable(fuzz_program "${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_program.cpp")
target_link_libraries(fuzz_program PRIVATE weft weft_test_support)
target_link_options(fuzz_program PRIVATE -fsanitize=fuzzer)
weft_target_warnings(fuzz_program)
weft_sanitizer_test_options(fuzz_program)

# New inputs go to a scratch corpus in the build tree, emptied on every run;
# the committed seeds in tests/fuzz/corpus/ are only read.
add_test(NAME fuzz_program
  COMMAND "${CMAKE_COMMAND}"
    "-DFUZZER=$<TARGET_FILE:fuzz_program>"
    "-DSEED_CORPUS=${PROJECT_SOURCE_DIR}/tests/fuzz/corpus"
    "-DWORK_DIR=${PROJECT_BINARY_DIR}/fuzz_program_work"
    "-DSECONDS=${WEFT_FUZZ_SECONDS}"
    "-DSEED=${WEFT_FUZZ_SEED}"
    -P "${PROJECT_SOURCE_DIR}/cmake/fuzz_test.cmake")
math(EXPR weft_fuzz_timeout "${WEFT_FUZZ_SECONDS} + 300")
set_tests_properties(fuzz_program PROPERTIES TIMEOUT ${weft_fuzz_timeout} LABELS fuzz_program)

# The fuzz preset also builds and runs test_tls_migrate (its build preset's
# targets, its test preset's label filter): the clang -O1 build is where a
# thread_local address cached across a migrating switch would show.
