// Signals for Runtime::block_on_main: a self-pipe handler; the calling
// thread watches the pipe.
//
// The handler only writes the signal number to a pipe (write() is
// async-signal-safe); everything else (interrupting the fiber, printing) is
// done by the thread that called block_on_main, which waits in poll() on the
// pipe. A small root fiber awaits the main fiber and writes "ended" to the
// same pipe, so one wait covers both events. Waiting in poll() rather than
// in a raw futex matters under ThreadSanitizer, which defers a signal
// handler until the receiving thread returns from a blocking call it knows. The pipe is created
// once per process and never closed, so a handler still running on another thread while
// block_on_main ends can never write into a recycled descriptor.
#include <weft/signals.hpp>

#include "fiber/fiber_control.hpp"
#include "runtime/main_signals.hpp"

#include <weft/fiber.hpp>
#include <weft/fiber_id.hpp>

#include <fmt/format.h>

#include <poll.h>
#include <unistd.h>

#include <fcntl.h>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace weft::detail {

namespace {

constexpr unsigned char kMainEnded = 0;  // not a signal number

// The process-wide self-pipe; both ends non-blocking, close-on-exec.
int g_pipe_read = -1;
std::atomic<int> g_pipe_write{-1};  // read by the handler: lock-free, so async-signal-safe
std::atomic<bool> g_active{false};  // one block_on_main at a time

void make_pipe_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0)
      throw std::system_error(errno, std::generic_category(), "weft::block_on_main: pipe2");
    g_pipe_read = fds[0];
    g_pipe_write.store(fds[1], std::memory_order_release);
  });
}

void write_byte(unsigned char b) noexcept {
  const int fd = g_pipe_write.load(std::memory_order_relaxed);
  // A full pipe drops the byte: a flood of signals is the same as many.
  [[maybe_unused]] const ssize_t r = ::write(fd, &b, 1);
}

extern "C" void on_signal(int signo) {
  const int saved = errno;
  write_byte(static_cast<unsigned char>(signo));
  errno = saved;
}

// read_byte() waits for the next byte of the pipe (poll is a blocking call
// that sanitizers know about, so the handler runs while we wait).
unsigned char read_byte() {
  for (;;) {
    unsigned char b = 0;
    const ssize_t r = ::read(g_pipe_read, &b, 1);
    if (r == 1) return b;
    if (r < 0 && errno != EAGAIN && errno != EINTR) return kMainEnded;  // broken pipe: give up
    pollfd p{g_pipe_read, POLLIN, 0};
    ::poll(&p, 1, -1);
  }
}

// drain() discards bytes left by signals of an earlier block_on_main.
void drain() noexcept {
  unsigned char buf[64];
  while (::read(g_pipe_read, buf, sizeof buf) > 0) {
  }
}

// main_state() ends the repeated-signal report: what the main fiber is doing
// that the first signal has not ended it yet. Everything it reads is atomic
// (the fiber runs on another thread); it is a diagnostic, so a state that
// changes right after is fine.
std::string main_state(FiberCore& main_handle) {
  if (main_handle.done()) return "after the main fiber ended";
  FiberControl& main = control(main_handle);
  if (main.interrupting())
    return "while the main fiber runs its finalizers (the interrupt was delivered)";
  const char* hint =
      ": a blocking system call such as read(), a loop without this_fiber::check_interrupt() or "
      "an uninterruptible region delays the interrupt until it ends";
  std::string state;
  switch (main.run_state()) {
    case RunState::runnable:
    case RunState::notified:
      state = "runnable";
      break;
    case RunState::running:
    case RunState::parking:
      state = fmt::format("running{}", hint);
      break;
    case RunState::parked: {
      // Parked with the interrupt pending but not delivered: a masked wait.
      const char* what = main.blocked_on();
      state = fmt::format("parked uninterruptibly on {}", what != nullptr ? what : "a wait");
      break;
    }
    case RunState::done:
      state = "ending";
      break;
  }
  return fmt::format("before the main fiber reached an interruptible yield point (it is {})",
                     state);
}

// report_repeated_signal() says that a second (third, ...) signal does
// nothing, and why the first one has not ended the main fiber yet.
void report_repeated_signal(int signo, FiberCore& main) {
  const std::string line =
      fmt::format("weft: signal {} received again {}; ignoring it\n", signo, main_state(main));
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
}

// EndNotice writes kMainEnded when destroyed: the watcher fiber's callable
// holds one, so the byte comes whether that fiber ran or was dropped unstarted.
struct EndNotice {
  bool armed = true;
  EndNotice() = default;
  EndNotice(EndNotice&& o) noexcept : armed(std::exchange(o.armed, false)) {}
  EndNotice(const EndNotice&) = delete;
  EndNotice& operator=(const EndNotice&) = delete;
  EndNotice& operator=(EndNotice&&) = delete;
  ~EndNotice() {
    if (armed) write_byte(kMainEnded);
  }
};

// start_end_watcher() starts a root fiber that awaits `main` and then posts
// kMainEnded to the pipe.
FiberRef start_end_watcher(FiberCore& main) {
  main.retain();
  ForkOptions options;
  options.name = "main/end-watcher";
  auto body = [target = FiberRef(&main), notice = EndNotice()] {
    control(*target).await_done_masked();
  };
  FiberCore* core = make_fiber(scheduler_of(main), nullptr, options, std::move(body));
  FiberRef ref(core);
  start_fiber(core, /*root=*/true);
  return ref;
}

}  // namespace

struct MainSignals::State {
  std::vector<std::pair<int, struct sigaction>> previous;  // restored in reverse

  void restore() noexcept {
    for (auto it = previous.rbegin(); it != previous.rend(); ++it)
      ::sigaction(it->first, &it->second, nullptr);
    previous.clear();
  }
};

MainSignals::MainSignals(std::initializer_list<int> signals) : state_(std::make_unique<State>()) {
  if (current_fiber() != nullptr)
    throw std::logic_error(fmt::format(
        "weft::Runtime::block_on_main called from fiber {}; call it from the main thread",
        current_id()));
  if (g_active.exchange(true, std::memory_order_acq_rel))
    throw std::logic_error("weft::Runtime::block_on_main: another block_on_main is running");
  try {
    make_pipe_once();
    drain();
    for (int signo : signals) {
      if (signo <= 0 || signo > 255 || signo == SIGKILL || signo == SIGSTOP)
        throw std::invalid_argument(
            fmt::format("weft::Runtime::block_on_main: signal {} cannot be caught", signo));
      struct sigaction action {};
      action.sa_handler = &on_signal;
      sigemptyset(&action.sa_mask);
      // SA_RESTART: a system call that the handler interrupts is restarted
      // instead of failing with EINTR. Dropping it would not make a fiber's
      // blocking read() return: Linux gives a process-directed signal (kill,
      // Ctrl-C) to the main thread unless it blocks the signal, normally the
      // thread waiting in poll() here, not the worker in read(). It would
      // only make EINTR appear at random in whatever call the thread the
      // kernel does pick is making (code in any fiber, most of which never
      // retries). A blocking system call is not a yield point: the
      // interrupt is delivered at the next one after the call returns (the
      // header says so), and a repeated signal says what the main fiber is
      // doing (report_repeated_signal).
      action.sa_flags = SA_RESTART;
      struct sigaction old {};
      if (::sigaction(signo, &action, &old) != 0)
        throw std::invalid_argument(
            fmt::format("weft::Runtime::block_on_main: cannot catch signal {}: {}", signo,
                        std::generic_category().message(errno)));
      state_->previous.emplace_back(signo, old);
    }
  } catch (...) {
    state_->restore();
    g_active.store(false, std::memory_order_release);
    throw;
  }
}

MainSignals::~MainSignals() {
  state_->restore();
  g_active.store(false, std::memory_order_release);
}

int MainSignals::run(FiberCore& main) {
  // This thread is the watcher: it sleeps in poll() on the self-pipe until
  // the main fiber has ended, turning signal bytes into interrupts.
  FiberRef end_watcher = start_end_watcher(main);
  int first_signal = 0;
  for (;;) {
    const unsigned char byte = read_byte();
    if (byte == kMainEnded) break;
    if (first_signal == 0) {
      first_signal = byte;
      main.request_interrupt(current_id());
    } else {
      report_repeated_signal(byte, main);
    }
  }
  end_watcher->await_done();  // plain thread: blocks, never interrupted
  main.await_done();          // already done, unless the end watcher never ran
  const Cause cause = main.exit_cause();
  if (cause.empty()) return 0;
  if (first_signal != 0 && cause.interrupted_only()) return kSignalExitBase + first_signal;
  std::fprintf(stderr, "weft: the main fiber %s:\n%s\n",
               cause.has_failure() ? "failed" : "was interrupted", cause.pretty().c_str());
  std::fflush(stderr);
  return first_signal != 0 ? kSignalExitBase + first_signal : 1;
}

}  // namespace weft::detail

namespace weft {

int Runtime::run_main(detail::FiberCore& main, std::initializer_list<int> signals) {
  detail::MainSignals routing(signals);       // handlers before the fiber starts
  detail::start_fiber(&main, /*root=*/true);  // takes its own reference
  return routing.run(main);
}

}  // namespace weft
