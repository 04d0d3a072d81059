// The process-wide list of live runtimes that a debugger starts from.
//
// tools/gdb/weft.py finds every fiber of the process by reading memory only
// (it must work on a core file, where no function of the process can be
// called): it reads the global `weft::detail::debug_runtimes`, follows each
// entry to its Scheduler, then walks the scheduler's roots and each fiber's
// children. Nothing in weft reads the list; it exists for debuggers.
//
// A Scheduler holds one DebugRegistration as its last member, so it is
// listed after its other members are built and unlisted before they are
// destroyed. The list is guarded by a mutex for the process's writers; a
// debugger reads it without the lock, so a process stopped in the middle of
// a runtime's construction or destruction may show a torn list (the script
// reports what it can read and stops at a bad pointer).
#pragma once

namespace weft::detail {

class Scheduler;

// DebugRegistration links one Scheduler into the debug list for its lifetime.
class DebugRegistration {
 public:
  explicit DebugRegistration(Scheduler* scheduler);
  ~DebugRegistration();
  DebugRegistration(const DebugRegistration&) = delete;
  DebugRegistration& operator=(const DebugRegistration&) = delete;

  // Read by debuggers (tools/gdb/weft.py names these fields).
  Scheduler* scheduler;
  DebugRegistration* prev = nullptr;
  DebugRegistration* next = nullptr;
};

// debug_runtimes is the head of the list (nullptr: no runtime is live).
// Written under a mutex in debug_registry.cpp; never read by weft itself.
extern DebugRegistration* debug_runtimes;

}  // namespace weft::detail
