// The one loop every I/O call runs (docs/internals.md, "The I/O reactor"):
// a yield point on entry, the non-blocking syscall, and on EAGAIN a park on
// the fd's record until readiness, the deadline or an interrupt.
#pragma once

#include "io/record.hpp"

#include <weft/deadline.hpp>
#include <weft/this_fiber.hpp>

#include <fmt/format.h>

#include <sys/types.h>

#include <cerrno>
#include <cstdint>
#include <string_view>
#include <utility>

namespace weft::detail {

// kAnyGeneration: a call on a raw fd number (not through an Fd), which
// cannot tell a closed-and-reused number from the one it meant.
inline constexpr std::uint32_t kAnyGeneration = UINT32_MAX;

enum class IoDirection : std::uint8_t { read, write };

// throw_io_error() throws std::system_error(err) whose message is `what`
// followed by the error's text ("weft::io::read_some fd 7: Broken pipe").
[[noreturn]] void throw_io_error(int err, std::string_view what);
// throw_closed() is the EBADF of a call whose fd an Fd::close() took.
[[noreturn]] void throw_closed(int fd, const char* what);

// OpScope counts a syscall on rec in `users` for its duration, after
// checking that the fd is open in generation `gen` (Fd::close() sets
// kClosed, then waits for `users` to drop to 0: a Dekker pair, seq_cst).
class OpScope {
 public:
  OpScope(IoRecord& rec, int fd, std::uint32_t gen, const char* what) : rec_(rec) {
    rec.users.fetch_add(1, std::memory_order_seq_cst);
    if ((rec.readiness.load(std::memory_order_seq_cst) & IoRecord::kClosed) != 0 ||
        (gen != kAnyGeneration && rec.generation.load(std::memory_order_seq_cst) != gen)) {
      rec.users.fetch_sub(1, std::memory_order_release);
      throw_closed(fd, what);
    }
  }
  ~OpScope() { rec_.users.fetch_sub(1, std::memory_order_release); }
  OpScope(const OpScope&) = delete;
  OpScope& operator=(const OpScope&) = delete;

 private:
  IoRecord& rec_;
};

// await_ready() parks until `fd` may be ready in direction `d` after a
// syscall that saw readiness `seen` returned EAGAIN. True: retry the
// syscall. False: the deadline passed. Throws Interrupted (nothing moved)
// or std::system_error(EBADF) when the fd was closed.
bool await_ready(IoRecord& rec, int fd, std::uint32_t gen, IoDirection d, std::uint64_t seen,
                 Deadline deadline, const char* what);

// wait_ready() returns at once if poll(2) says `fd` is ready in direction
// `d` (a caller's own syscalls do not clear the record's readiness bits),
// else parks until an edge (wait_readable/_writable, connect). A yield
// point; false when the deadline passed first.
bool wait_ready(int fd, std::uint32_t gen, IoDirection d, Deadline deadline, const char* what);

// io_call() runs `call` (a non-blocking syscall returning ssize_t, errno on
// failure) until it does not fail with EAGAIN. Returns its result; -1 with
// errno set on an error, errno ETIMEDOUT when `deadline` passed first.
template <class Call>
ssize_t io_call(int fd, std::uint32_t gen, IoDirection d, Deadline deadline, const char* what,
                Call&& call) {
  throw_if_interrupted();  // a yield point: nothing has moved yet
  IoRecord& rec = record_for(fd);
  for (;;) {
    const std::uint64_t seen = rec.readiness.load(std::memory_order_acquire);
    ssize_t n;
    int err;
    {
      OpScope op(rec, fd, gen, what);
      n = call();
      err = errno;
    }
    if (n >= 0) return n;
    if (err == EINTR) continue;
    if (err != EAGAIN && err != EWOULDBLOCK) {
      errno = err;
      return -1;
    }
    if (!await_ready(rec, fd, gen, d, seen, deadline, what)) {
      errno = ETIMEDOUT;
      return -1;
    }
  }
}

// transfer() is read_some/write_some (raw fds and sockets alike): EBADF for
// an empty fd, 0 for an empty buffer (still a yield point), else io_call()
// with no deadline; an error throws, naming `what` and the fd.
template <class Call>
std::size_t transfer(int fd, std::uint32_t gen, IoDirection d, bool empty, const char* what,
                     Call&& call) {
  if (fd < 0) throw_io_error(EBADF, fmt::format("{} fd {}", what, fd));
  if (empty) {
    throw_if_interrupted();
    return 0;
  }
  const ssize_t n = io_call(fd, gen, d, Deadline::max(), what, std::forward<Call>(call));
  if (n < 0) throw_io_error(errno, fmt::format("{} fd {}", what, fd));
  return static_cast<std::size_t>(n);
}

// close_fd() is Fd::close(): wake the waiters with EBADF, wait for calls in
// progress, deregister, bump the generation, close(2).
void close_fd(int fd) noexcept;

}  // namespace weft::detail
