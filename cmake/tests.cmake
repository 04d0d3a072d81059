# Tests (developer mode): one GoogleTest executable per tests/test_*.cpp, each
# labelled with its file name so a stage can leave it out (ctest -LE), plus
# the install-and-consume check of the CMake package.

# Shared fixtures (leak-checking fixture, latches, ...) under tests/support/.
file(GLOB weft_test_support_sources CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/tests/support/*.cpp")
if(weft_test_support_sources)
  add_library(weft_test_support STATIC ${weft_test_support_sources})
  target_include_directories(weft_test_support PUBLIC "${PROJECT_SOURCE_DIR}/tests")
  target_link_libraries(weft_test_support PUBLIC weft GTest::gtest GTest::gmock)
  weft_target_warnings(weft_test_support)
else()
  add_library(weft_test_support INTERFACE)
  target_include_directories(weft_test_support INTERFACE "${PROJECT_SOURCE_DIR}/tests")
  target_link_libraries(weft_test_support INTERFACE weft GTest::gtest GTest::gmock)
endif()

file(GLOB weft_test_sources CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/tests/test_*.cpp")
foreach(source IN LISTS weft_test_sources)
  get_filename_component(name "${source}" NAME_WE)
  add_executable(${name} "${source}")
  # Tests may reach internals (deques, timers) through src/.
  target_include_directories(${name} PRIVATE "${PROJECT_SOURCE_DIR}/src")
  target_link_libraries(${name} PRIVATE
    weft weft_test_support GTest::gtest_main GTest::gtest GTest::gmock)
  weft_target_warnings(${name})
  gtest_discover_tests(${name}
    DISCOVERY_MODE PRE_TEST
    DISCOVERY_TIMEOUT 120
    PROPERTIES TIMEOUT 600 LABELS ${name})
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
