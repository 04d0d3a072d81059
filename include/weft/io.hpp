// weft::io: interruptible I/O on non-blocking file descriptors (DESIGN.md §1
// "I/O and blocking calls", rule 3.13). Linux only.
//
// A fiber that waits on an fd parks and holds no thread: the runtime's
// reactor (one epoll per runtime, each fd registered once, edge-triggered,
// polled by a worker that would otherwise sleep) wakes it. Every call here is
// a yield point: an interrupt pending on entry throws Interrupted before any
// byte moves, and an interrupt while parked wakes the fiber at once with
// nothing moved (docs/cancel-safety.md has the table, call by call). From a
// plain thread every call blocks the thread (poll(2)) and is not interruptible.
//
// Errors are std::system_error carrying errno, whose message names the
// operation and the fd or endpoint:
//   "weft::io::TcpStream::connect 127.0.0.1:1: Connection refused".
#pragma once

#include <weft/blocking.hpp>
#include <weft/deadline.hpp>

#include <fmt/format.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <weft/source_location.hpp>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace weft::io {
class Fd;
}
namespace weft::detail {
// FdAccess reads an Fd's generation for the socket classes (src/io/).
struct FdAccess {
  static std::uint32_t generation(const io::Fd& fd) noexcept;
};
}  // namespace weft::detail

namespace weft::io {

using weft::Deadline;

// Fd owns a file descriptor: move-only RAII. Constructing one makes the fd
// non-blocking; closing it (close() or the destructor) first wakes every
// fiber parked on it with std::system_error(EBADF), then closes the number,
// so no waiter ever retries on a reused fd number.
class Fd {
 public:
  Fd() noexcept = default;
  // Fd(fd) adopts `fd` and makes it non-blocking (std::system_error if fcntl
  // fails, std::invalid_argument for a negative fd).
  explicit Fd(int fd);
  Fd(Fd&& other) noexcept : generation_(other.generation_) { fd_.store(other.release_number()); }
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { close(); }

  // get() is the fd number, -1 when empty.
  int get() const noexcept { return fd_.load(std::memory_order_relaxed); }
  // release() gives the fd up without closing it; this Fd becomes empty.
  int release() noexcept;
  // close() wakes the fd's waiters (they throw std::system_error(EBADF)),
  // waits for calls in progress on it to return, then closes it; no-op when
  // empty. Safe to call while other fibers use the fd (that is how a parked
  // reader is woken). A close(2) error is ignored: the number is gone
  // either way (as Rust's OwnedFd).
  void close() noexcept;
  explicit operator bool() const noexcept { return get() >= 0; }

 private:
  friend struct detail::FdAccess;
  int release_number() noexcept;
  // fd_ is atomic because close() may race a call that is reading it.
  std::atomic<int> fd_{-1};
  // generation_: the fd's record generation when adopted; a call through a
  // closed Fd fails with EBADF even after the number was reused.
  std::uint32_t generation_ = 0;
};

// Readiness waits: yield points. wait_readable() returns once `fd` is
// readable (or at end of stream, or on an error condition: the next read
// says which); wait_writable() likewise. The _until forms return false when
// the deadline came first.
void wait_readable(int fd, weft::source_location where = weft::source_location::current());
void wait_writable(int fd, weft::source_location where = weft::source_location::current());
[[nodiscard]] bool wait_readable_until(
    int fd, Deadline deadline, weft::source_location where = weft::source_location::current());
[[nodiscard]] bool wait_writable_until(
    int fd, Deadline deadline, weft::source_location where = weft::source_location::current());

// read_some() reads at least one byte into `buf` (0: end of stream, or an
// empty buffer), parking instead of returning EAGAIN; write_some() writes at
// least one byte. `fd` must be non-blocking. Interrupted while parked: no
// byte moved.
[[nodiscard]] std::size_t read_some(int fd, std::span<std::byte> buf,
                                    weft::source_location where = weft::source_location::current());
[[nodiscard]] std::size_t write_some(int fd, std::span<const std::byte> buf,
                                     weft::source_location where = weft::source_location::current());

// pipe() makes a non-blocking, close-on-exec pipe: {read end, write end}.
[[nodiscard]] std::pair<Fd, Fd> pipe();

// Endpoint is a numeric host and a port; fmt prints "127.0.0.1:80" or "[::1]:80".
struct Endpoint {
  std::string host;
  std::uint16_t port = 0;
  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

// EndOfStream: read_exact() met the end of the stream before the buffer was full.
struct EndOfStream : std::runtime_error {
  using runtime_error::runtime_error;
};

// TcpStream is a connected TCP socket (IPv4 or IPv6).
class TcpStream {
 public:
  TcpStream() noexcept = default;
  // adopt() wraps a connected socket (made non-blocking).
  static TcpStream adopt(Fd fd) noexcept;
  // connect() resolves `host` (numeric hosts directly, names through
  // weft::blocking's getaddrinfo) and tries each address in turn; the error
  // of the last one is thrown. Interrupted: no socket is left behind.
  static TcpStream connect(std::string_view host, std::uint16_t port,
                           weft::source_location where = weft::source_location::current());
  static TcpStream connect(const Endpoint& endpoint,
                           weft::source_location where = weft::source_location::current()) {
    return connect(endpoint.host, endpoint.port, where);
  }

  // read_some(): at least one byte, or 0 at end of stream. Cancel-safe.
  [[nodiscard]] std::size_t read_some(std::span<std::byte> buf,
                                      weft::source_location where = weft::source_location::current());
  // read_exact() fills `buf` or throws EndOfStream. Not cancel-safe: an
  // interrupt midway leaves the bytes it read consumed (as Tokio's).
  void read_exact(std::span<std::byte> buf,
                  weft::source_location where = weft::source_location::current());
  // write_some(): at least one byte. Cancel-safe.
  [[nodiscard]] std::size_t write_some(
      std::span<const std::byte> buf, weft::source_location where = weft::source_location::current());
  // write_all() writes all of `buf`. Not cancel-safe: an interrupt midway
  // leaves the bytes it wrote sent.
  void write_all(std::span<const std::byte> buf,
                 weft::source_location where = weft::source_location::current());
  // shutdown_write() sends end of stream to the peer (the read side stays open).
  void shutdown_write();
  // close() wakes parked readers and writers with std::system_error, then closes.
  void close() noexcept { fd_.close(); }
  void set_nodelay(bool on);
  [[nodiscard]] Endpoint local_endpoint() const;
  [[nodiscard]] Endpoint peer_endpoint() const;
  int native_handle() const noexcept { return fd_.get(); }
  explicit operator bool() const noexcept { return static_cast<bool>(fd_); }

 private:
  friend class TcpListener;
  explicit TcpStream(Fd fd) noexcept : fd_(std::move(fd)) {}
  Fd fd_;
};

// TcpListener is a listening TCP socket.
class TcpListener {
 public:
  TcpListener() noexcept = default;
  // bind() binds (SO_REUSEADDR; port 0: an ephemeral port) and listens.
  static TcpListener bind(std::string_view host, std::uint16_t port, int backlog = 1024);
  // accept() takes one connection. Cancel-safe: interrupted, it took none
  // (the next accept gets it).
  [[nodiscard]] TcpStream accept(weft::source_location where = weft::source_location::current());
  [[nodiscard]] Endpoint local_endpoint() const;
  void close() noexcept { fd_.close(); }
  int native_handle() const noexcept { return fd_.get(); }
  explicit operator bool() const noexcept { return static_cast<bool>(fd_); }

 private:
  explicit TcpListener(Fd fd) noexcept : fd_(std::move(fd)) {}
  Fd fd_;
};

// UdpSocket is a bound UDP socket.
class UdpSocket {
 public:
  UdpSocket() noexcept = default;
  // bind() binds to `host`:`port` (port 0: an ephemeral port).
  static UdpSocket bind(std::string_view host, std::uint16_t port);
  // send_to() sends one datagram (all of `buf` or nothing). Cancel-safe.
  std::size_t send_to(std::span<const std::byte> buf, const Endpoint& to,
                      weft::source_location where = weft::source_location::current());
  // receive_from() receives one datagram (truncated to `buf`). Cancel-safe.
  [[nodiscard]] std::pair<std::size_t, Endpoint> receive_from(
      std::span<std::byte> buf, weft::source_location where = weft::source_location::current());
  [[nodiscard]] Endpoint local_endpoint() const;
  void close() noexcept { fd_.close(); }
  int native_handle() const noexcept { return fd_.get(); }
  explicit operator bool() const noexcept { return static_cast<bool>(fd_); }

 private:
  explicit UdpSocket(Fd fd) noexcept : fd_(std::move(fd)) {}
  Fd fd_;
};

// as_bytes()/as_writable_bytes() of a string or array, for the calls above.
inline std::span<const std::byte> as_bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace weft::io

// fmt prints an Endpoint as "127.0.0.1:80" or "[::1]:80".
template <>
struct fmt::formatter<weft::io::Endpoint> : fmt::formatter<fmt::string_view> {
  template <class Ctx>
  auto format(const weft::io::Endpoint& e, Ctx& ctx) const {
    const bool v6 = e.host.find(':') != std::string::npos;
    return fmt::formatter<fmt::string_view>::format(
        v6 ? fmt::format("[{}]:{}", e.host, e.port) : fmt::format("{}:{}", e.host, e.port), ctx);
  }
};
