# cmake -P script behind the test_install_consumer ctest test.
# Inputs: WEFT_BINARY_DIR, CONSUMER_SOURCE_DIR, WORK_DIR, CXX_COMPILER,
# GENERATOR, BUILD_TYPE. Any failing step fails the test.

foreach(var WEFT_BINARY_DIR CONSUMER_SOURCE_DIR WORK_DIR CXX_COMPILER GENERATOR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "install_consumer_test: ${var} is not set")
  endif()
endforeach()

set(prefix "${WORK_DIR}/prefix")
set(consumer_build "${WORK_DIR}/build")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

# run_step(<what> <command...>): run a command, echo its output, stop on failure.
function(run_step what)
  string(JOIN " " command_line ${ARGN})
  message(STATUS "install_consumer_test: ${what}: ${command_line}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "install_consumer_test: ${what} failed (${rc})")
  endif()
endfunction()

run_step("install" "${CMAKE_COMMAND}" --install "${WEFT_BINARY_DIR}" --prefix "${prefix}")
run_step("configure consumer" "${CMAKE_COMMAND}"
  -S "${CONSUMER_SOURCE_DIR}" -B "${consumer_build}" -G "${GENERATOR}"
  "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
  "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}"
  "-DCMAKE_PREFIX_PATH=${prefix}")
run_step("build consumer" "${CMAKE_COMMAND}" --build "${consumer_build}")
run_step("run consumer" "${consumer_build}/app")
