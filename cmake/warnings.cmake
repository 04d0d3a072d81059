# weft_target_warnings(<target>): our warning set on one of our own targets;
# dependencies are never affected. WEFT_WERROR (on in every preset) makes them
# errors. g++ 12 and clang++ 14 must both be clean. Under clang,
# -Wthread-safety checks the lock annotations (WEFT_GUARDED_BY, WEFT_REQUIRES,
# include/weft/detail/thread_annotations.hpp).
function(weft_target_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    target_compile_options(${target} PRIVATE -Wthread-safety)
  endif()
  if(WEFT_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
