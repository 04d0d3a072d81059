# weft_header_check: every public header compiles on its own. One generated
# translation unit per include/weft/*.hpp and include/weft/detail/*.hpp,
# holding nothing but that #include.

file(GLOB weft_public_headers CONFIGURE_DEPENDS
  RELATIVE "${PROJECT_SOURCE_DIR}/include"
  "${PROJECT_SOURCE_DIR}/include/weft/*.hpp"
  "${PROJECT_SOURCE_DIR}/include/weft/detail/*.hpp")

set(weft_header_check_sources "")
foreach(header IN LISTS weft_public_headers)
  string(MAKE_C_IDENTIFIER "${header}" stem)
  set(tu "${PROJECT_BINARY_DIR}/header_check/${stem}.cpp")
  # file(CONFIGURE) rewrites only on change, so a re-glob rebuilds nothing.
  file(CONFIGURE OUTPUT "${tu}" CONTENT "#include <${header}>\n" @ONLY)
  weft_asio_sanitizer_options("${tu}")
  list(APPEND weft_header_check_sources "${tu}")
endforeach()

if(weft_header_check_sources)
  add_library(weft_header_check OBJECT ${weft_header_check_sources})
  target_link_libraries(weft_header_check PRIVATE weft)
  weft_target_warnings(weft_header_check)
endif()
