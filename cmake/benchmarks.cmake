# Benchmarks (developer mode). benchmarks/kernels/<name>.cpp -> kernel_<name>:
# the kernels shared with the peers (../shared/BENCHMARKS.md), each printing
# "BENCH <name> <value> <unit>". benchmarks/micro/<name>.cpp -> micro_<name>:
# Google Benchmark runs of internals, hence src/ on the include path.
# benchmarks/machine/<name>.cpp -> machine_<name>: see below.

file(GLOB weft_kernel_sources CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/benchmarks/kernels/*.cpp")
foreach(source IN LISTS weft_kernel_sources)
  get_filename_component(name "${source}" NAME_WE)
  add_executable(kernel_${name} "${source}")
  target_link_libraries(kernel_${name} PRIVATE weft)
  weft_target_warnings(kernel_${name})
endforeach()

# benchmarks/machine/<name>.cpp -> machine_<name>: facts about the machine
# that benchmarks/compare prints beside its table (no weft in them).
file(GLOB weft_machine_sources CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/benchmarks/machine/*.cpp")
foreach(source IN LISTS weft_machine_sources)
  get_filename_component(name "${source}" NAME_WE)
  add_executable(machine_${name} "${source}")
  target_link_libraries(machine_${name} PRIVATE Threads::Threads)
  weft_target_warnings(machine_${name})
endforeach()

file(GLOB weft_micro_sources CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/benchmarks/micro/*.cpp")
foreach(source IN LISTS weft_micro_sources)
  get_filename_component(name "${source}" NAME_WE)
  add_executable(micro_${name} "${source}")
  target_include_directories(micro_${name} PRIVATE "${PROJECT_SOURCE_DIR}/src")
  target_link_libraries(micro_${name} PRIVATE weft benchmark::benchmark_main)
  weft_target_warnings(micro_${name})
endforeach()

# The kernels' --quick smoke run is part of the test suite so they cannot rot:
# every kernel checks its own result and compare exits non-zero on a failure.
if(BUILD_TESTING OR WEFT_DEVELOPER_MODE)
  find_package(Python3 COMPONENTS Interpreter)
  if(Python3_Interpreter_FOUND AND weft_kernel_sources)
    add_test(NAME benchmarks_quick
             COMMAND Python3::Interpreter "${PROJECT_SOURCE_DIR}/benchmarks/compare" --quick
                     --no-build --no-install --build-dir "${PROJECT_BINARY_DIR}")
    set_tests_properties(benchmarks_quick PROPERTIES LABELS "benchmarks_quick" TIMEOUT 600)
  endif()
endif()
