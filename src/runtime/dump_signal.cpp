// RuntimeOptions::dump_signal: a signal writes Runtime::dump() to stderr.
//
// The handler does one async-signal-safe thing: it writes the signal number
// to a process-wide self-pipe. A process-wide thread (started by the first
// runtime that asks for a dump signal, blocked in poll() on the pipe, as
// Go's signal-forwarding goroutine) reads it and writes the dump of every
// runtime registered for that signal. The registry's mutex is held while
// dumping, so a runtime unregisters (in ~Runtime, before its scheduler is
// destroyed) only between two dumps. The pipe is never closed: a handler
// still running can never write into a recycled descriptor.
#include "runtime/dump_signal.hpp"

#include "scheduler/scheduler.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace weft::detail {

namespace {

int g_read_end = -1;
std::atomic<int> g_write_end{-1};  // read by the handler: lock-free, async-signal-safe

extern "C" void on_dump_signal(int signo) {
  const int saved = errno;
  const auto b = static_cast<unsigned char>(signo);
  [[maybe_unused]] const ssize_t r = ::write(g_write_end.load(std::memory_order_relaxed), &b, 1);
  errno = saved;
}

// Registry is the runtimes that asked for a dump signal, and the handlers
// it replaced (restored when the last runtime of a signal goes).
struct Registry {
  std::mutex mu;
  std::vector<std::pair<int, const Scheduler*>> runtimes;
  std::map<int, struct sigaction> previous;
};

Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: the thread may outlive statics
  return *r;
}

void write_all(const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(STDERR_FILENO, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

// dump_thread() waits for signal numbers on the pipe and dumps.
void dump_thread() {
  for (;;) {
    pollfd p{g_read_end, POLLIN, 0};
    if (::poll(&p, 1, -1) < 0 && errno != EINTR) return;
    unsigned char b = 0;
    while (::read(g_read_end, &b, 1) == 1) {
      Registry& reg = registry();
      std::lock_guard lk(reg.mu);
      for (const auto& [signo, sched] : reg.runtimes)
        if (signo == b) write_all(sched->dump());
    }
  }
}

void start_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0)
      throw std::system_error(errno, std::generic_category(), "weft: dump_signal pipe2");
    g_read_end = fds[0];
    g_write_end.store(fds[1], std::memory_order_release);
    std::thread(dump_thread).detach();
  });
}

}  // namespace

DumpSignal::DumpSignal(const Scheduler& sched, int signo) : sched_(sched), signo_(signo) {
  if (signo_ == 0) return;
  if (signo_ < 1 || signo_ >= NSIG || signo_ == SIGKILL || signo_ == SIGSTOP)
    throw std::invalid_argument("weft: RuntimeOptions::dump_signal = " + std::to_string(signo_) +
                                " is not a signal that can be caught");
  start_once();
  Registry& reg = registry();
  std::lock_guard lk(reg.mu);
  const bool first = std::none_of(reg.runtimes.begin(), reg.runtimes.end(),
                                  [&](const auto& e) { return e.first == signo_; });
  if (first) {
    struct sigaction sa {};
    sa.sa_handler = &on_dump_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    struct sigaction old {};
    if (::sigaction(signo_, &sa, &old) != 0)
      throw std::system_error(errno, std::generic_category(), "weft: dump_signal sigaction");
    reg.previous[signo_] = old;
  }
  reg.runtimes.emplace_back(signo_, &sched_);
}

DumpSignal::~DumpSignal() {
  if (signo_ == 0) return;
  Registry& reg = registry();
  std::lock_guard lk(reg.mu);
  std::erase(reg.runtimes, std::pair<int, const Scheduler*>(signo_, &sched_));
  const bool last = std::none_of(reg.runtimes.begin(), reg.runtimes.end(),
                                 [&](const auto& e) { return e.first == signo_; });
  if (last) {
    ::sigaction(signo_, &reg.previous[signo_], nullptr);
    reg.previous.erase(signo_);
  }
}

}  // namespace weft::detail
