// ForkOptions: the optional last argument of fork, fork_daemon and spawn
// (DESIGN.md §1 "Fibers").
#pragma once

#include <cstddef>
#include <string>

namespace weft {

// ForkOptions is the optional last argument of fork, fork_daemon and spawn.
struct ForkOptions {
  std::string name;              // shown in dumps, traces and overflow reports
  std::size_t stack_size = 0;    // 0: the runtime's default; otherwise >= 16 KiB
  bool uninterruptible = false;  // start masked (for race-free acquisition)
};

}  // namespace weft
