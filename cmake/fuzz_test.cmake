# cmake -P script behind the fuzz_program ctest test: fuzz for SECONDS from
# the read-only SEED_CORPUS, new inputs and crash files under WORK_DIR.
# Inputs: FUZZER, SEED_CORPUS, WORK_DIR, SECONDS, SEED. A crash, leak,
# timeout or violated invariant fails the test and prints the input in hex.

foreach(var FUZZER SEED_CORPUS WORK_DIR SECONDS SEED)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "fuzz_test: ${var} is not set")
  endif()
endforeach()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}/corpus")

set(command "${FUZZER}"
  -max_total_time=${SECONDS} -seed=${SEED} -rss_limit_mb=4096 -max_len=512 -timeout=60
  -print_final_stats=1 "-artifact_prefix=${WORK_DIR}/"
  "${WORK_DIR}/corpus" "${SEED_CORPUS}")
string(JOIN " " command_line ${command})
message(STATUS "fuzz_test: ${command_line}")
execute_process(COMMAND ${command} RESULT_VARIABLE rc)
if(rc EQUAL 0)
  return()
endif()

file(GLOB artifacts "${WORK_DIR}/crash-*" "${WORK_DIR}/leak-*" "${WORK_DIR}/timeout-*"
  "${WORK_DIR}/oom-*" "${WORK_DIR}/slow-unit-*")
foreach(artifact IN LISTS artifacts)
  file(READ "${artifact}" hex HEX)
  message(STATUS "fuzz_test: ${artifact}: ${hex}")
  message(STATUS "fuzz_test: reproduce with: ${FUZZER} ${artifact}")
endforeach()
message(FATAL_ERROR "fuzz_test: the fuzzer failed (${rc})")
