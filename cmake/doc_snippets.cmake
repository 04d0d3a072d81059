# Compiled documentation (developer mode): every ```cpp block of README.md
# and docs/*.md is compiled, and run when it is a complete program, by the
# test_docs executable. cmake/doc_snippets_generate.cmake turns each page
# into one translation unit at build time (it documents the markers:
# ```cpp, ```cpp no-run, ```cpp fragment, // snippet: name); each snippet
# with a main() is the GoogleTest case doc_<page>.<heading>. One TU per
# page and one link keep the cost to a few compiler runs per build stage. A
# page added under docs/ is picked up at the next configure
# (CONFIGURE_DEPENDS); an edited page is regenerated at the next build.

file(GLOB weft_doc_pages CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/docs/*.md")
list(PREPEND weft_doc_pages "${PROJECT_SOURCE_DIR}/README.md")

set(weft_doc_sources "")
set(weft_doc_ids "")
foreach(page IN LISTS weft_doc_pages)
  get_filename_component(stem "${page}" NAME_WE)
  string(TOLOWER "${stem}" stem)
  string(MAKE_C_IDENTIFIER "${stem}" id)
  if(id IN_LIST weft_doc_ids)  # docs/README.md beside README.md
    set(id "docs_${id}")
  endif()
  list(APPEND weft_doc_ids "${id}")
  file(RELATIVE_PATH display "${PROJECT_SOURCE_DIR}" "${page}")
  set(output "${PROJECT_BINARY_DIR}/doc_snippets/${id}.cpp")
  add_custom_command(OUTPUT "${output}"
    COMMAND "${CMAKE_COMMAND}" "-DPAGE=${page}" "-DOUTPUT=${output}" "-DSUITE=doc_${id}"
      "-DDISPLAY=${display}" -P "${PROJECT_SOURCE_DIR}/cmake/doc_snippets_generate.cmake"
    DEPENDS "${page}" "${PROJECT_SOURCE_DIR}/cmake/doc_snippets_generate.cmake"
    COMMENT "Extracting the C++ snippets of ${display}"
    VERBATIM)
  list(APPEND weft_doc_sources "${output}")
endforeach()

add_executable(test_docs ${weft_doc_sources})
target_link_libraries(test_docs PRIVATE weft GTest::gtest_main GTest::gtest)
weft_target_warnings(test_docs)
gtest_discover_tests(test_docs
  DISCOVERY_MODE PRE_TEST
  DISCOVERY_TIMEOUT 120
  PROPERTIES TIMEOUT 600 LABELS test_docs)
