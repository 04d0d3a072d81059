// Shared helpers of the I/O kernels (tcp_echo, read_timeout,
// idle_connections; ../shared/BENCHMARKS.md "I/O kernels"): the descriptor
// limit and connection count, connected pairs on loopback, the echo server
// fiber and the open-descriptor count. Only weft's public API (weft/io.hpp).
#pragma once

#include "common.hpp"

#include <weft/io.hpp>

#include <dirent.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdlib>
#include <span>
#include <string>
#include <utility>

namespace weft::bench {

// kIoConnsSpec is the connection count of read_timeout and idle_connections
// in the spec; kIoConnsQuick the --quick one.
inline constexpr std::size_t kIoConnsSpec = 10'000;
inline constexpr std::size_t kIoConnsQuick = 300;
// kEchoBuffer is the server fiber's read buffer ("reads up to 4 KiB").
inline constexpr std::size_t kEchoBuffer = 4096;

// raise_nofile() sets the soft RLIMIT_NOFILE to the hard limit, as the peers
// do, and fails the kernel if `need` descriptors do not fit.
inline void raise_nofile(const Args& a, std::size_t need) {
  rlimit rl{};
  WEFT_BENCH_CHECK(a, getrlimit(RLIMIT_NOFILE, &rl) == 0, "getrlimit(RLIMIT_NOFILE) failed");
  rl.rlim_cur = rl.rlim_max;
  WEFT_BENCH_CHECK(a, setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit(RLIMIT_NOFILE) failed");
  WEFT_BENCH_CHECK(a, rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need,
                   "RLIMIT_NOFILE hard limit " + std::to_string(rl.rlim_max) + " < " +
                       std::to_string(need) + " needed: raise it (ulimit -n) or lower IO_CONNS");
}

// io_conns() is the connection count of read_timeout and idle_connections:
// env IO_CONNS if set (as the peers read it), else 10,000 or, where the hard
// RLIMIT_NOFILE cannot hold both ends of 10,000 connections plus spare
// descriptors, (hard - 100) / 200 * 100 (9,900 for 20,000): the peers' run.sh
// rule. --quick caps it at kIoConnsQuick.
inline std::size_t io_conns(const Args& a) {
  std::size_t n = kIoConnsSpec;
  if (const char* env = std::getenv("IO_CONNS"); env != nullptr && *env != '\0') {
    char* end = nullptr;
    const long v = std::strtol(env, &end, 10);
    WEFT_BENCH_CHECK(a, *end == '\0' && v > 0, "IO_CONNS must be a positive integer");
    n = static_cast<std::size_t>(v);
  } else {
    rlimit rl{};
    WEFT_BENCH_CHECK(a, getrlimit(RLIMIT_NOFILE, &rl) == 0, "getrlimit(RLIMIT_NOFILE) failed");
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 2 * kIoConnsSpec + 100) {
      n = rl.rlim_max < 300 ? 100 : static_cast<std::size_t>((rl.rlim_max - 100) / 200 * 100);
      if (!a.quick)
        std::fprintf(stderr, "kernel_%s: RLIMIT_NOFILE hard limit %llu < %zu: %zu connections\n",
                     a.kernel, static_cast<unsigned long long>(rl.rlim_max), 2 * kIoConnsSpec + 100,
                     n);
    }
  }
  return a.quick ? std::min(n, kIoConnsQuick) : n;
}

// Pair is the two ends of one loopback connection.
struct Pair {
  io::TcpStream client;
  io::TcpStream server;
};

// connect_pair() connects to `listener` and accepts right after: the accept
// queue then holds exactly this connection, so the two ends are a pair.
// TCP_NODELAY on both (Go's default, set by every peer).
inline Pair connect_pair(io::TcpListener& listener, const io::Endpoint& at) {
  Pair p{io::TcpStream::connect(at), listener.accept()};
  p.client.set_nodelay(true);
  p.server.set_nodelay(true);
  return p;
}

// echo_serve() is the server fiber's body (tcp_echo and idle_connections):
// read up to 4 KiB, write back all it read, until end of stream. The buffer
// is on the fiber's stack and left uninitialised, as in the Asio peer (Go's
// is on the goroutine stack too; Tokio's is a zeroed Vec).
inline void echo_serve(io::TcpStream& s) {
  std::array<std::byte, kEchoBuffer> buf;
  for (;;) {
    const std::size_t n = s.read_some(buf);
    if (n == 0) return;
    s.write_all(std::span<const std::byte>(buf.data(), n));
  }
}

// open_fds() counts the process's open descriptors (/proc/self/fd).
inline std::size_t open_fds(const Args& a) {
  DIR* d = opendir("/proc/self/fd");
  WEFT_BENCH_CHECK(a, d != nullptr, "cannot open /proc/self/fd");
  std::size_t n = 0;
  while (const dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n - 1;  // the directory stream's own descriptor
}

// check_fds() checks (from a fiber) that the open descriptors are back to
// `base`; closes may trail the fibers by a moment, so it retries for ~1 s.
inline void check_fds(const Args& a, std::size_t base) {
  std::size_t n = open_fds(a);
  for (int i = 0; i < 1000 && n != base; ++i) {
    weft::this_fiber::sleep_for(std::chrono::milliseconds(1));
    n = open_fds(a);
  }
  WEFT_BENCH_CHECK(
      a, n == base,
      std::to_string(n) + " descriptors open after a run, " + std::to_string(base) + " before");
}

// median_of() is the median of `xs` (not empty).
inline double median_of(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  return xs[xs.size() / 2];
}

}  // namespace weft::bench
