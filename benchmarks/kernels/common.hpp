// Shared helpers for the benchmark kernels (../shared/BENCHMARKS.md): argument
// parsing, timing (median of 5 after a warm-up, like every peer), RSS, the
// "BENCH <name> <value> <unit>" lines and a CHECK that fails loudly.
//
// Each kernel is its own executable (kernel_<name>) and accepts
//   --quick        much smaller sizes (a smoke run: ~1 s per kernel)
//   --workers N    RuntimeOptions::workers (default 2, this machine's cores)
//   --timeout S    watchdog: exit 3 with a message (and a fiber dump) after S s
#pragma once

#include <weft/weft.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

namespace weft::bench {

// kForever stands for "blocks forever": nothing in a kernel ever waits this long.
inline constexpr std::chrono::hours kForever{24 * 365};

// Args are the command-line options every kernel accepts.
struct Args {
  bool quick = false;       // --quick: smoke-test sizes
  unsigned workers = 2;     // --workers N
  int timeout_s = 0;        // --timeout S (0: 60 s with --quick, else 900 s)
  const char* kernel = "";  // the kernel's name, for messages
};

// fail() prints "CHECK FAILED" with the kernel's name and exits 1.
[[noreturn]] inline void fail(const char* kernel, const std::string& what, const char* file,
                              int line) {
  std::fprintf(stderr, "CHECK FAILED: kernel %s: %s (%s:%d)\n", kernel, what.c_str(), file, line);
  std::fflush(stderr);
  std::_Exit(1);
}

// WEFT_BENCH_CHECK(args, cond, message) fails the kernel loudly when cond is false.
#define WEFT_BENCH_CHECK(args, cond, message)                                       \
  do {                                                                              \
    if (!(cond)) ::weft::bench::fail((args).kernel, (message), __FILE__, __LINE__); \
  } while (0)

// parse_args() reads the common options; unknown options exit with status 2.
inline Args parse_args(int argc, char** argv, const char* kernel) {
  Args a;
  a.kernel = kernel;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    if (s == "--quick") {
      a.quick = true;
    } else if (s == "--workers" && i + 1 < argc) {
      a.workers = static_cast<unsigned>(std::atoi(argv[++i]));
    } else if (s == "--timeout" && i + 1 < argc) {
      a.timeout_s = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: kernel_%s [--quick] [--workers N] [--timeout S]\n", kernel);
      std::exit(2);
    }
  }
  if (a.workers == 0) {
    std::fprintf(stderr, "kernel_%s: --workers must be >= 1\n", kernel);
    std::exit(2);
  }
  if (a.timeout_s <= 0) a.timeout_s = a.quick ? 60 : 900;
  return a;
}

// runtime_options() are the options of a kernel's Runtime: default stack size.
inline RuntimeOptions runtime_options(const Args& a) {
  RuntimeOptions o;
  o.workers = a.workers;
  o.name = std::string("k-") + a.kernel;
  return o;
}

// Watchdog turns a hang into a loud failure: after the timeout it prints the
// kernel's name and the runtime's fiber dump, then exits 3. A second alarm
// guards against the dump itself blocking.
class Watchdog {
 public:
  Watchdog(const Args& a, const Runtime* rt = nullptr)
      : args_(a), rt_(rt), thread_([this] { run(); }) {}
  ~Watchdog() {
    {
      std::lock_guard lk(m_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  void run() {
    std::unique_lock lk(m_);
    if (cv_.wait_for(lk, std::chrono::seconds(args_.timeout_s), [this] { return stop_; })) return;
    std::fprintf(stderr, "CHECK FAILED: kernel %s: no result after %d s (hang?)\n", args_.kernel,
                 args_.timeout_s);
    std::fflush(stderr);
    alarm(10);  // SIGALRM's default action ends the process if dump() blocks
    if (rt_ != nullptr) {
      const std::string d = rt_->dump();
      std::fprintf(stderr, "%.20000s\n", d.c_str());
    }
    std::fflush(stderr);
    std::_Exit(3);
  }
  Args args_;
  const Runtime* rt_;
  std::mutex m_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// median_ns() runs f once as a warm-up, then `runs` times; the median wall time in ns.
template <class F>
double median_ns(F&& f, int runs = 5) {
  f();
  std::vector<double> ts;
  for (int i = 0; i < runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    ts.push_back(
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ts.begin(), ts.end());
  return ts[ts.size() / 2];
}

// elapsed_ns() is the wall time of one call of f.
template <class F>
double elapsed_ns(F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
}

// rss_bytes() is the current resident set (/proc/self/statm), as the peers read it.
inline long rss_bytes() {
  long size = 0, resident = 0;
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr || std::fscanf(f, "%ld %ld", &size, &resident) != 2) {
    std::fprintf(stderr, "cannot read /proc/self/statm\n");
    std::_Exit(1);
  }
  std::fclose(f);
  return resident * sysconf(_SC_PAGESIZE);
}

// peak_rss_bytes() is the process's peak resident set (getrusage ru_maxrss).
inline long peak_rss_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss * 1024L;
}

// print() writes one "BENCH <name> <value> <unit>" line (%.1f, or %.0f for
// bytes per task or connection and for counts, as the peers print them).
inline void print(const char* name, double value, const char* unit) {
  if (std::strncmp(unit, "bytes/", 6) == 0 || std::strcmp(unit, "conns") == 0) {
    std::printf("BENCH %s %.0f %s\n", name, value, unit);
  } else {
    std::printf("BENCH %s %.1f %s\n", name, value, unit);
  }
  std::fflush(stdout);
}

// print_word() writes a "BENCH <name> <word> <unit>" line (e.g. "yes").
inline void print_word(const char* name, const char* word, const char* unit) {
  std::printf("BENCH %s %s %s\n", name, word, unit);
  std::fflush(stdout);
}

// run_root() runs body as the root fiber of rt and fails loudly on any
// failure (a kernel's body never fails; an escaped exception is a bug).
template <class F>
void run_root(const Args& a, Runtime& rt, F&& body) {
  auto exit = rt.block_on(std::forward<F>(body));
  if (!exit.ok())
    fail(a.kernel, "the kernel's root fiber ended with: " + exit.cause().pretty(), __FILE__,
         __LINE__);
}

// --- skynet, shared by kernel_skynet and kernel_scaling --------------------
// A 10-ary tree of fibers; each leaf returns its index, each inner fiber forks
// 10 children and sums what it joins (in order), like every peer.
// skynet() is the value of the subtree of `size` leaves starting at `num`.
inline std::uint64_t skynet(std::uint64_t num, std::uint64_t size) {
  if (size == 1) return num;
  const std::uint64_t sub = size / 10;
  std::array<Fiber<std::uint64_t>, 10> children;
  for (std::uint64_t i = 0; i < 10; ++i) {
    children[i] = weft::fork([num, i, sub] { return skynet(num + i * sub, sub); });
  }
  std::uint64_t sum = 0;
  for (auto& child : children) sum += child.join();
  return sum;
}

// skynet_expected() is the sum of 0..leaves-1.
constexpr std::uint64_t skynet_expected(std::uint64_t leaves) { return leaves * (leaves - 1) / 2; }

// skynet_median_ms() runs skynet (root forked like the peers) on rt: median ms.
inline double skynet_median_ms(const Args& a, Runtime& rt, std::uint64_t leaves) {
  double ns = 0;
  run_root(a, rt, [&] {
    ns = median_ns([&] {
      const std::uint64_t sum = weft::fork([leaves] { return skynet(0, leaves); }).join();
      WEFT_BENCH_CHECK(
          a, sum == skynet_expected(leaves),
          "skynet sum " + std::to_string(sum) + " != " + std::to_string(skynet_expected(leaves)));
    });
  });
  return ns / 1e6;
}

}  // namespace weft::bench
