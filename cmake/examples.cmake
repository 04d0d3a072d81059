# Examples: examples/<name>.cpp -> executable <name>. In developer mode each is
# also the ctest test example_<name>, unless its first line is
#   // weft-example: no-ctest
# (for programs that wait for a signal, run forever, or want arguments).

# Under a sanitizer, examples whose first line is
#   // weft-example: not-sanitized
# are left out: beast_get is almost all Boost.Beast template code (about two
# minutes of compiling per sanitizer stage on CI's 2 cores) and the Asio
# bridge it goes through is checked under both sanitizers by test_asio.

file(GLOB weft_example_sources CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/examples/*.cpp")
foreach(source IN LISTS weft_example_sources)
  get_filename_component(name "${source}" NAME_WE)
  file(STRINGS "${source}" first_line LIMIT_COUNT 1)
  string(STRIP "${first_line}" first_line)
  if(WEFT_SANITIZE AND first_line STREQUAL "// weft-example: not-sanitized")
    continue()
  endif()
  add_executable(${name} "${source}")
  weft_asio_sanitizer_options("${source}")
  target_link_libraries(${name} PRIVATE weft)
  weft_target_warnings(${name})
  weft_sanitizer_test_options(${name})

  if(WEFT_DEVELOPER_MODE AND NOT first_line STREQUAL "// weft-example: no-ctest")
    add_test(NAME example_${name} COMMAND ${name})
    set_tests_properties(example_${name} PROPERTIES TIMEOUT 600 LABELS "example;example_${name}")
  endif()
endforeach()
