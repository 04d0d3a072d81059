// DumpSignal: RuntimeOptions::dump_signal for one runtime (see the .cpp).
#pragma once

namespace weft::detail {

class Scheduler;

// DumpSignal registers `sched` to be dumped to stderr when `signo` arrives
// (0: nothing); the destructor unregisters it, and restores the previous
// handler when no runtime asks for that signal any more.
class DumpSignal {
 public:
  // Throws std::invalid_argument for a signal that cannot be caught.
  DumpSignal(const Scheduler& sched, int signo);
  ~DumpSignal();
  DumpSignal(const DumpSignal&) = delete;
  DumpSignal& operator=(const DumpSignal&) = delete;

 private:
  const Scheduler& sched_;
  int signo_;
};

}  // namespace weft::detail
