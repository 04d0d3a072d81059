# The weft library: static by default (BUILD_SHARED_LIBS is honoured).
# Public headers live in include/, private ones in src/.

include(GNUInstallDirs)

# Standard C++20, no GNU dialect, for every target weft defines.
set(CMAKE_CXX_EXTENSIONS OFF)

file(GLOB_RECURSE weft_sources CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/src/*.cpp")
if(NOT weft_sources)
  message(FATAL_ERROR "weft: no sources found under ${PROJECT_SOURCE_DIR}/src")
endif()

add_library(weft ${weft_sources})
add_library(weft::weft ALIAS weft)

target_compile_features(weft PUBLIC cxx_std_20)
set_target_properties(weft PROPERTIES
  VERSION ${PROJECT_VERSION}
  SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})

target_include_directories(weft
  PUBLIC
    "$<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>"
    "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>"
  PRIVATE
    "${PROJECT_SOURCE_DIR}/src")

target_link_libraries(weft PUBLIC fmt::fmt Threads::Threads Boost::context)

if(WEFT_DEBUG_ASSERTS)
  target_compile_definitions(weft PUBLIC WEFT_DEBUG_ASSERTS)
endif()

target_compile_definitions(weft PUBLIC ${WEFT_SANITIZER_DEFINITIONS})
target_compile_options(weft PUBLIC ${WEFT_SANITIZER_FLAGS})
target_link_options(weft PUBLIC ${WEFT_SANITIZER_FLAGS})

weft_target_warnings(weft)
