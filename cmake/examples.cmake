# Examples: examples/<name>.cpp -> executable <name>. In developer mode each is
# also the ctest test example_<name>, unless its first line is
#   // weft-example: no-ctest
# (for programs that wait for a signal, run forever, or want arguments).

file(GLOB weft_example_sources CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/examples/*.cpp")
foreach(source IN LISTS weft_example_sources)
  get_filename_component(name "${source}" NAME_WE)
  add_executable(${name} "${source}")
  weft_asio_sanitizer_options("${source}")
  target_link_libraries(${name} PRIVATE weft)
  weft_target_warnings(${name})

  file(STRINGS "${source}" first_line LIMIT_COUNT 1)
  string(STRIP "${first_line}" first_line)
  if(WEFT_DEVELOPER_MODE AND NOT first_line STREQUAL "// weft-example: no-ctest")
    add_test(NAME example_${name} COMMAND ${name})
    set_tests_properties(example_${name} PROPERTIES TIMEOUT 600 LABELS "example;example_${name}")
  endif()
endforeach()
