# weft_target_warnings(<target>): our warning set on one of our own targets;
# dependencies are never affected. WEFT_WERROR (on in every preset) makes them
# errors. g++ 12 and clang++ 14 must both be clean.
function(weft_target_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
  if(WEFT_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
