# cmake -P script: turn the C++ snippets of one Markdown page into one
# translation unit of the test_docs executable (cmake/doc_snippets.cmake).
# Inputs: PAGE (the .md file), OUTPUT (the .cpp to write), SUITE (the
# GoogleTest suite name), DISPLAY (the page's path as shown in messages).
#
# The markers, as written in the Markdown:
#   ```cpp            compiled at namespace scope; if it defines `int main()`
#                     it is also run, as the test <SUITE>.<name>, and fails
#                     when main returns non-zero or throws. main must end
#                     with an explicit `return 0;` (it becomes an ordinary
#                     function) and take no arguments.
#   ```cpp no-run     compiled, never run (a program that waits for a signal,
#                     or hangs on purpose to show a dump).
#   ```cpp fragment   not compiled: a piece of a program, for reading only.
#   ```text, ```sh    (any other language) not compiled.
#   // snippet: name  (a line inside the block) names the test; otherwise
#                     the nearest heading above the block names it.
# Each snippet lives in its own namespace (<SUITE>::snippet_<n>), so
# snippets may define the same names. Its #include lines are hoisted to the top of the
# file (so put no #include under #if in a snippet). #line directives point
# compiler errors at the Markdown file.

cmake_minimum_required(VERSION 3.25)  # script mode: the policies (IN_LIST)

foreach(var PAGE OUTPUT SUITE DISPLAY)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "doc_snippets_generate: ${var} is not set")
  endif()
endforeach()

# CMake lists split on ';' and treat '[' ']' specially, and C++ is full of
# them: stand them in with control characters while the page is a list of
# lines, and put them back when writing.
string(ASCII 1 semi)
string(ASCII 2 open)
string(ASCII 3 close)
file(READ "${PAGE}" text)
string(REPLACE ";" "${semi}" text "${text}")
string(REPLACE "[" "${open}" text "${text}")
string(REPLACE "]" "${close}" text "${text}")
string(REPLACE "\n" ";" lines "${text}")

# name_of(<out> <text>): a test name from a heading or marker: lower case,
# each run of other characters an underscore ("3.1 Delivery" -> 3_1_delivery).
function(name_of out text)
  string(TOLOWER "${text}" name)
  string(REGEX REPLACE "[^a-z0-9]+" "_" name "${name}")
  string(REGEX REPLACE "^_+|_+$" "" name "${name}")
  set(${out} "${name}" PARENT_SCOPE)
endfunction()

set(includes "")      # hoisted #include lines, in first-seen order
set(bodies "")        # the namespaces, one per snippet
set(registrations "") # RegisterTest calls for the snippets with a main
set(names "")
set(state outside)    # outside | cpp | skip (in a block that is not compiled)
set(fence 0)          # the number of backticks that opened the block
set(heading "")
set(count 0)
set(line_number 0)
foreach(line IN LISTS lines)
  math(EXPR line_number "${line_number} + 1")
  set(closing OFF)
  if(NOT state STREQUAL "outside" AND line MATCHES "^[ \t]*(```+)[ \t]*$")
    # A closing fence: at least as many backticks as the opening one.
    string(LENGTH "${CMAKE_MATCH_1}" length)
    if(length GREATER_EQUAL fence)
      set(closing ON)
    endif()
  endif()
  if(state STREQUAL "outside")
    if(line MATCHES "^#+[ \t]+(.*)$")
      set(heading "${CMAKE_MATCH_1}")
    elseif(line MATCHES "^[ \t]*(```+)[ \t]*([^`]*)$")
      # An opening fence (CommonMark): three or more backticks, then an info
      # string without backticks, whose first word is the language.
      string(LENGTH "${CMAKE_MATCH_1}" fence)
      set(info "${CMAKE_MATCH_2}")
      if(NOT info MATCHES "^cpp([ \t]|$)" OR info MATCHES "^cpp[ \t]+fragment")
        set(state skip)
      else()
        set(state cpp)
        math(EXPR count "${count} + 1")
        math(EXPR first_line "${line_number} + 1")
        set(body "")
        set(marker "")
        set(has_main OFF)
        set(run ON)
        if(info MATCHES "^cpp[ \t]+no-run")
          set(run OFF)
        endif()
      endif()
    endif()
  elseif(closing)
    if(state STREQUAL "cpp")
      set(ns "${SUITE}::snippet_${count}")
      string(APPEND bodies "namespace ${ns} {\n#line ${first_line} \"${PAGE}\"\n${body}}  // namespace ${ns}\n\n")
      if(has_main AND run)
        if(NOT marker STREQUAL "")
          name_of(name "${marker}")
        elseif(NOT heading STREQUAL "")
          name_of(name "${heading}")
        else()
          set(name "snippet_${count}")
        endif()
        if(name IN_LIST names)
          set(name "${name}_${count}")
        endif()
        list(APPEND names "${name}")
        string(APPEND registrations
          "  register_snippet(\"${name}\", ${first_line}, &${ns}::snippet_main)${semi}\n")
      endif()
    endif()
    set(state outside)
  elseif(state STREQUAL "cpp")
    if(line MATCHES "^[ \t]*#[ \t]*include[ \t]*([<\"].*)$")
      set(include "#include ${CMAKE_MATCH_1}")
      if(NOT include IN_LIST includes)
        list(APPEND includes "${include}")
      endif()
      set(line "")  # keep the line count for #line
    elseif(line MATCHES "^[ \t]*//[ \t]*snippet:[ \t]*(.*)$")
      set(marker "${CMAKE_MATCH_1}")
    endif()
    if(line MATCHES "(^|[^a-zA-Z0-9_])int[ \t]+main[ \t]*\\((void)?\\)")
      string(REGEX REPLACE "int([ \t]+)main[ \t]*\\((void)?\\)" "int\\1snippet_main()" line "${line}")
      set(has_main ON)
    endif()
    string(APPEND body "${line}\n")
  endif()
endforeach()
if(NOT state STREQUAL "outside")
  message(FATAL_ERROR "${DISPLAY}: a ``` block is not closed")
endif()

set(out "// Generated from ${DISPLAY} by cmake/doc_snippets_generate.cmake: do not edit.\n")
if(NOT registrations STREQUAL "")
  list(APPEND includes "#include <gtest/gtest.h>" "#include <exception>")
endif()
foreach(include IN LISTS includes)
  string(APPEND out "${include}\n")
endforeach()
string(APPEND out "\n${bodies}")
if(NOT registrations STREQUAL "")
  # Back to this file's own line numbers for the runner below.
  string(REGEX MATCHALL "\n" newlines "${out}")
  list(LENGTH newlines line_count)
  math(EXPR line_count "${line_count} + 2")
  string(APPEND out "#line ${line_count} \"${OUTPUT}\"\n")
  string(APPEND out [=[
namespace {

// One snippet's main as a test: it passes when main returns 0.
class DocSnippet : public ::testing::Test {
 public:
  explicit DocSnippet(int (*main)()) : main_(main) {}
  void TestBody() override {
    try {
      EXPECT_EQ(main_(), 0) << "the snippet's main() returned non-zero";
    } catch (const std::exception& e) {
      FAIL() << "the snippet threw: " << e.what();
    } catch (...) {
      FAIL() << "the snippet threw an exception not derived from std::exception (weft::Interrupted?)";
    }
  }

 private:
  int (*main_)();
};

void register_snippet(const char* name, int line, int (*main)()) {
  ::testing::RegisterTest("@SUITE@", name, nullptr, nullptr, "@DISPLAY@", line,
                          [main]() -> ::testing::Test* { return new DocSnippet(main); });
}

// Registered before main(), in the page's order.
[[maybe_unused]] const bool registered = [] {
@REGISTRATIONS@  return true;
}();

}  // namespace
]=])
  string(REPLACE "@SUITE@" "${SUITE}" out "${out}")
  string(REPLACE "@DISPLAY@" "${DISPLAY}" out "${out}")
  string(REPLACE "@REGISTRATIONS@" "${registrations}" out "${out}")
endif()

string(REPLACE "${semi}" ";" out "${out}")
string(REPLACE "${open}" "[" out "${out}")
string(REPLACE "${close}" "]" out "${out}")
# Write only on change, so an edit of a page's prose does not rebuild it.
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" previous)
  if(previous STREQUAL out)
    return()
  endif()
endif()
file(WRITE "${OUTPUT}" "${out}")
