// Runtime::block_on_main and process signals (DESIGN.md §1 "Process integration").
//
// In-process tests raise() the signal from inside the main fiber. The
// child-process tests re-execute this binary with WEFT_SIGNALS_CHILD set,
// which turns SignalsChild.test_signals_child_helper into a small program
// that prints "ready", waits for a signal and exits with block_on_main's
// status; the parent kill()s it and checks the output and the exit status.
#include <weft/signals.hpp>

#include "support/weft_test.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace weft {
namespace {

using namespace std::chrono_literals;
using test::EventLog;
using test::RuntimeTest;

constexpr auto kLong = std::chrono::hours(1);  // a sleep nobody waits out
constexpr const char* kChildEnv = "WEFT_SIGNALS_CHILD";

// handler_of() is the current disposition of signo.
void (*handler_of(int signo))(int) {
  struct sigaction sa {};
  sigaction(signo, nullptr, &sa);
  return sa.sa_handler;
}

class SignalsTest : public RuntimeTest {};
WEFT_RUNTIME_TEST_SUITE(SignalsTest);

TEST_P(SignalsTest, test_signals_success_returns_zero_and_restores_handlers) {
  auto before_int = handler_of(SIGINT);
  auto before_term = handler_of(SIGTERM);
  bool ran = false;
  EXPECT_EQ(rt().block_on_main([&] { ran = true; }), 0);
  EXPECT_TRUE(ran);
  EXPECT_EQ(handler_of(SIGINT), before_int);
  EXPECT_EQ(handler_of(SIGTERM), before_term);
}

TEST_P(SignalsTest, test_signals_int_result_is_the_status) {
  EXPECT_EQ(rt().block_on_main([] { return 7; }), 7);
  EXPECT_EQ(rt().block_on_main([] { return 0; }), 0);
}

TEST_P(SignalsTest, test_signals_failure_returns_one) {
  testing::internal::CaptureStderr();
  const int status = rt().block_on_main([] { throw std::runtime_error("main failed"); });
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(status, 1);
  EXPECT_NE(err.find("main failed"), std::string::npos) << err;
}

TEST_P(SignalsTest, test_signals_sigint_interrupts_main_fiber_130) {
  EventLog log;
  const int status = rt().block_on_main([&] {
    OnExit fin([&] { log.add("finalizer"); });
    Fiber<void> worker = fork([&] {
      OnExit worker_fin([&] { log.add("worker finalizer"); });
      this_fiber::sleep_for(kLong);
    });
    std::raise(SIGINT);  // the handler only writes to the self-pipe
    this_fiber::sleep_for(kLong);
    log.add("not reached");
  });
  EXPECT_EQ(status, 130);
  EXPECT_EQ(log.index_of("not reached"), -1);
  EXPECT_EQ(log.count("finalizer"), 1);
  // The forked worker may not have started when the interrupt ended main.
  EXPECT_LE(log.count("worker finalizer"), 1);
}

TEST_P(SignalsTest, test_signals_sigterm_gives_143) {
  const int status = rt().block_on_main([] {
    std::raise(SIGTERM);
    this_fiber::sleep_for(kLong);
  });
  EXPECT_EQ(status, 143);
}

TEST_P(SignalsTest, test_signals_custom_signal_list) {
  const int status = rt().block_on_main(
      [] {
        std::raise(SIGUSR2);
        this_fiber::sleep_for(kLong);
      },
      {SIGUSR2});
  EXPECT_EQ(status, 128 + SIGUSR2);
}

TEST_P(SignalsTest, test_signals_second_signal_is_reported_and_ignored) {
  EventLog log;
  testing::internal::CaptureStderr();
  const int status = rt().block_on_main([&] {
    OnExit fin([&] {
      std::raise(SIGINT);           // while finalizers run: reported, ignored
      this_fiber::sleep_for(20ms);  // finalizers may sleep; nothing tears them down
      log.add("finalizer done");
    });
    std::raise(SIGINT);
    this_fiber::sleep_for(kLong);
  });
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(status, 130);
  EXPECT_EQ(log.count("finalizer done"), 1);
  // The second byte may be read after the main fiber ended (then it is
  // dropped silently); when it is read before, it is reported.
  if (!err.empty()) {
    EXPECT_NE(err.find("weft: signal 2 received again while the main fiber runs its finalizers "
                       "(the interrupt was delivered); ignoring it"),
              std::string::npos)
        << err;
  }
}

TEST_P(SignalsTest, test_signals_from_a_fiber_is_an_error) {
  Exit<void> e = run([&] { rt().block_on_main([] {}); });
  ASSERT_TRUE(e.failed());
  EXPECT_NE(e.cause().failure<std::logic_error>(), nullptr);
}

TEST_P(SignalsTest, test_signals_uncatchable_signal_is_rejected) {
  auto before = handler_of(SIGINT);
  EXPECT_THROW(rt().block_on_main([] {}, {SIGINT, SIGKILL}), std::invalid_argument);
  EXPECT_EQ(handler_of(SIGINT), before);    // restored although SIGINT was installed
  EXPECT_EQ(rt().block_on_main([] {}), 0);  // and a later call works
}

TEST_P(SignalsTest, test_signals_one_block_on_main_at_a_time) {
  std::atomic<bool> main_running{false};
  std::atomic<bool> second_checked{false};
  bool second_rejected = false;
  std::thread first([&] {
    EXPECT_EQ(rt().block_on_main([&] {
      main_running = true;
      while (!second_checked.load()) this_fiber::yield();
    }),
              0);
  });
  while (!main_running.load()) std::this_thread::yield();
  try {
    rt().block_on_main([] {});
  } catch (const std::logic_error&) {
    second_rejected = true;
  }
  second_checked = true;
  first.join();
  EXPECT_TRUE(second_rejected);
}

// ---------------------------------------------------------------------------
// Child processes

// read_stdin_until_interrupted() is the main fiber of the "read" helper: it
// blocks its worker in read() on stdin (a pipe from the parent), which is
// not a yield point, and calls check_interrupt() after every read. It says
// "interrupt requested" (from the thread that requests it, through the
// fiber's stop_token) so that the parent knows when the signal was taken.
void read_stdin_until_interrupted() {
  std::stop_callback announce(this_fiber::stop_token(), [] {
    std::printf("interrupt requested\n");
    std::fflush(stdout);
  });
  std::printf("ready\n");
  std::fflush(stdout);
  for (;;) {
    char buf[64];
    const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    const int error = errno;
    if (n < 0)
      std::printf("read failed: %s\n", error == EINTR ? "EINTR" : std::strerror(error));
    else
      std::printf("read returned %zd bytes\n", n);
    std::fflush(stdout);
    this_fiber::check_interrupt();  // the first yield point after read() returned
    std::printf("not interrupted\n");
    std::fflush(stdout);
    if (n == 0) return;
  }
}

// The helper program run in a child process (skipped in a normal run). Modes:
// "once" sleeps until interrupted; "double" also blocks its finalizer until
// the parent writes a line; "read" runs read_stdin_until_interrupted().
TEST(SignalsChild, test_signals_child_helper) {
  const char* mode = std::getenv(kChildEnv);
  if (mode == nullptr) GTEST_SKIP() << "helper for the child-process signal tests";
  const bool twice = std::string(mode) == "double";
  const bool blocking_read = std::string(mode) == "read";
  int status = 0;
  {
    Runtime rt({.workers = 2});
    status = rt.block_on_main([&] {
      OnExit fin([&] {
        std::printf("finalizing\n");
        std::fflush(stdout);
        if (twice) {
          // Wait (uninterruptibly, blocking this worker) until the parent saw
          // the second signal reported; it then writes a line.
          char line[16];
          if (std::fgets(line, sizeof line, stdin) == nullptr) std::printf("stdin closed\n");
        }
        std::printf("finalizer done\n");
        std::fflush(stdout);
      });
      if (blocking_read) {
        read_stdin_until_interrupted();
        return;
      }
      std::printf("ready\n");
      std::fflush(stdout);
      this_fiber::sleep_for(kLong);
    });
  }
  std::printf("status %d\n", status);
  std::fflush(nullptr);
  std::_Exit(status);
}

// Under TSan the child-process tests are skipped: about once in 400 child
// runs on a loaded machine a kill()ed SIGINT/SIGTERM never reaches weft's
// handler (strace: the kernel delivers it to the child's main thread between
// read_byte()'s read() and its poll(); TSan defers it and never runs the
// handler, and a bounded poll() does not bring it back). It happens with the
// tests and runtime of before this change too. The Debug and ASan stages run
// them; the in-process signal tests above run under TSan as well.
#if defined(WEFT_TSAN)
#define WEFT_SKIP_CHILD_UNDER_TSAN() \
  GTEST_SKIP() << "TSan loses a process-directed signal now and then; see the comment"
#else
#define WEFT_SKIP_CHILD_UNDER_TSAN() (void)0
#endif

// Child is a running helper process with its output and input piped.
class Child {
 public:
  explicit Child(const std::string& mode) {
    int out[2];
    int in[2];
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(in, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e)
      if (std::strncmp(*e, kChildEnv, std::strlen(kChildEnv)) != 0) env_strings.emplace_back(*e);
    env_strings.push_back(std::string(kChildEnv) + "=" + mode);
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string exe = "/proc/self/exe";
    std::string filter = "--gtest_filter=SignalsChild.test_signals_child_helper";
    char* argv[] = {exe.data(), filter.data(), nullptr};
    pid_ = ::fork();
    if (pid_ == 0) {
      // Only async-signal-safe calls between fork and exec.
      dup2(out[1], STDOUT_FILENO);
      dup2(out[1], STDERR_FILENO);
      dup2(in[0], STDIN_FILENO);
      execve(exe.c_str(), argv, envp.data());
      _exit(127);
    }
    close(out[1]);
    close(in[0]);
    out_ = out[0];
    in_ = in[1];
  }
  ~Child() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(out_);
    close(in_);
  }
  // read_until() reads output until it contains `needle` (true) or EOF or
  // 60 s pass (false).
  bool read_until(const std::string& needle) {
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (output_.find(needle) == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left <= 0ms) return false;
      pollfd p{out_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[512];
      const ssize_t n = read(out_, buf, sizeof buf);
      if (n <= 0) {
        eof_ = true;
        return false;
      }
      output_.append(buf, static_cast<std::size_t>(n));
    }
    return true;
  }
  // signal() sends signo to the child.
  void signal(int signo) { kill(pid_, signo); }
  // say() writes a line to the child's stdin.
  void say(const char* line) { [[maybe_unused]] auto n = write(in_, line, std::strlen(line)); }
  // wait() reads the rest of the output and returns the raw wait status; a
  // child still running after 60 s is killed (the status then says SIGKILL).
  int wait() {
    read_until("\x01never\x01");  // to EOF, or 60 s
    int status = 0;
    if (!eof_) {
      output_ += "\n[test: the child did not exit; killed]\n";
      kill(pid_, SIGKILL);
    }
    waitpid(pid_, &status, 0);  // the child closed its output: it is exiting
    reaped_ = true;
    return status;
  }
  const std::string& output() const { return output_; }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  int in_ = -1;
  bool reaped_ = false;
  bool eof_ = false;
  std::string output_;
};

TEST(SignalsProcess, test_signals_sigint_child_exits_130_after_finalizers) {
  WEFT_SKIP_CHILD_UNDER_TSAN();
  Child child("once");
  ASSERT_TRUE(child.read_until("ready\n")) << child.output();
  child.signal(SIGINT);
  const int status = child.wait();
  ASSERT_TRUE(WIFEXITED(status)) << child.output();
  EXPECT_EQ(WEXITSTATUS(status), 130) << child.output();
  const std::string& out = child.output();
  EXPECT_NE(out.find("finalizer done"), std::string::npos) << out;
  EXPECT_NE(out.find("status 130"), std::string::npos) << out;
}

TEST(SignalsProcess, test_signals_sigterm_child_exits_143) {
  WEFT_SKIP_CHILD_UNDER_TSAN();
  Child child("once");
  ASSERT_TRUE(child.read_until("ready\n")) << child.output();
  child.signal(SIGTERM);
  const int status = child.wait();
  ASSERT_TRUE(WIFEXITED(status)) << child.output();
  EXPECT_EQ(WEXITSTATUS(status), 143) << child.output();
  EXPECT_NE(child.output().find("finalizer done"), std::string::npos) << child.output();
}

TEST(SignalsProcess, test_signals_second_sigint_during_finalizers_is_ignored) {
  WEFT_SKIP_CHILD_UNDER_TSAN();
  Child child("double");
  ASSERT_TRUE(child.read_until("ready\n")) << child.output();
  child.signal(SIGINT);
  ASSERT_TRUE(child.read_until("finalizing\n")) << child.output();
  child.signal(SIGINT);  // the finalizer is blocked until we answer
  ASSERT_TRUE(
      child.read_until("weft: signal 2 received again while the main fiber runs its "
                       "finalizers (the interrupt was delivered); ignoring it"))
      << child.output();
  child.say("go\n");
  const int status = child.wait();
  ASSERT_TRUE(WIFEXITED(status)) << child.output();
  EXPECT_EQ(WEXITSTATUS(status), 130) << child.output();
  EXPECT_NE(child.output().find("finalizer done"), std::string::npos) << child.output();
  EXPECT_EQ(child.output().find("yield point"), std::string::npos) << child.output();
}

// A blocking system call is not a yield point: SIGINT while the main fiber
// is blocked in read() neither ends the process nor makes read() fail with
// EINTR (the handlers use SA_RESTART, and the kernel gives the signal to the
// process's main thread, which waits in block_on_main, not to the worker in
// read()). read() returns when data comes; the interrupt is then delivered
// at the next yield point (check_interrupt) and the exit status is 130.
TEST(SignalsProcess, test_signals_blocking_read_is_interrupted_at_the_next_yield_point) {
  WEFT_SKIP_CHILD_UNDER_TSAN();
  Child child("read");
  ASSERT_TRUE(child.read_until("ready\n")) << child.output();
  child.signal(SIGINT);
  ASSERT_TRUE(child.read_until("interrupt requested\n")) << child.output();
  child.say("go\n");  // only now does read() return
  const int status = child.wait();
  ASSERT_TRUE(WIFEXITED(status)) << child.output();
  EXPECT_EQ(WEXITSTATUS(status), 130) << child.output();
  const std::string& out = child.output();
  const auto requested = out.find("interrupt requested");
  const auto returned = out.find("read returned 3 bytes");
  ASSERT_NE(returned, std::string::npos) << out;
  EXPECT_LT(requested, returned) << out;
  EXPECT_EQ(out.find("EINTR"), std::string::npos) << out;
  EXPECT_EQ(out.find("not interrupted"), std::string::npos) << out;
  EXPECT_NE(out.find("finalizer done"), std::string::npos) << out;
  EXPECT_NE(out.find("status 130"), std::string::npos) << out;
  EXPECT_EQ(out.find("received again"), std::string::npos) << out;
}

// A second SIGINT while the main fiber is still blocked in read() (its body
// runs, no finalizer has started) says so instead of claiming that
// finalizers run, and is ignored: the first one still ends the process.
TEST(SignalsProcess, test_signals_second_sigint_in_blocking_call_says_no_yield_point_yet) {
  WEFT_SKIP_CHILD_UNDER_TSAN();
  Child child("read");
  ASSERT_TRUE(child.read_until("ready\n")) << child.output();
  child.signal(SIGINT);
  ASSERT_TRUE(child.read_until("interrupt requested\n")) << child.output();
  child.signal(SIGINT);  // the first was taken: this one is not merged with it
  ASSERT_TRUE(child.read_until(
      "weft: signal 2 received again before the main fiber reached an interruptible yield "
      "point (it is running: a blocking system call such as read()"))
      << child.output();
  ASSERT_TRUE(child.read_until("; ignoring it\n")) << child.output();
  child.say("go\n");
  const int status = child.wait();
  ASSERT_TRUE(WIFEXITED(status)) << child.output();
  EXPECT_EQ(WEXITSTATUS(status), 130) << child.output();
  const std::string& out = child.output();
  EXPECT_EQ(out.find("runs its finalizers"), std::string::npos) << out;
  EXPECT_LT(out.find("received again"), out.find("finalizing")) << out;
  EXPECT_NE(out.find("finalizer done"), std::string::npos) << out;
  EXPECT_EQ(out.find("not interrupted"), std::string::npos) << out;
}

}  // namespace
}  // namespace weft
