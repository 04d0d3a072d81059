// The wait on an fd's readiness (ops.hpp, docs/internals.md "The I/O
// reactor") and the calls of io.hpp on raw fds.
#include "io/ops.hpp"
#include "io/reactor.hpp"
#include "scheduler/scheduler.hpp"

#include <weft/io.hpp>
#include <weft/this_fiber.hpp>

#include <fmt/format.h>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <system_error>

namespace weft::detail {

void throw_io_error(int err, std::string_view what) {
  throw std::system_error(err, std::system_category(), std::string(what));
}

void throw_closed(int fd, const char* what) {
  throw_io_error(EBADF, fmt::format("{} fd {} (closed by weft::io::Fd::close)", what, fd));
}

namespace {

// wait_plain() is await_ready() on a plain thread: poll(2) the one fd.
bool wait_plain(int fd, IoDirection d, Deadline deadline) {
  pollfd p{fd, static_cast<short>(d == IoDirection::read ? POLLIN : POLLOUT), 0};
  for (;;) {
    int timeout_ms = -1;
    if (deadline != Deadline::max()) {
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= left.zero()) return false;
      // Round up: waking a little late is fine, spinning on 0 ms is not.
      timeout_ms = static_cast<int>(std::min<std::int64_t>(
          std::chrono::ceil<std::chrono::milliseconds>(left).count(), 1 << 30));
    }
    const int r = ::poll(&p, 1, timeout_ms);
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) throw_io_error(errno, fmt::format("weft::io: poll fd {}", fd));
  }
}

}  // namespace

bool await_ready(IoRecord& rec, int fd, std::uint32_t gen, IoDirection d, std::uint64_t seen,
                 Deadline deadline, const char* what) {
  FiberCore* self = current_fiber();
  if (self == nullptr) return wait_plain(fd, d, deadline);
  Reactor& reactor = scheduler_of(*self).reactor();
  reactor.register_fd(rec, fd);
  SyncQueue& queue = d == IoDirection::read ? rec.readers : rec.writers;
  const std::uint64_t bit = d == IoDirection::read ? IoRecord::kReadable : IoRecord::kWritable;
  IoSlot slot;
  WaitStatus st;
  {  // no landing pad for the lock or the count at the throw (SyncQueue::park_status)
    std::unique_lock lk(queue.lock());
    // Under the queue lock, the poller's event (readiness first, then this
    // lock to wake the queue) is either seen here or finds us parked.
    std::uint64_t cur = rec.readiness.load(std::memory_order_acquire);
    for (;;) {
      if ((cur & IoRecord::kClosed) != 0 ||
          (gen != kAnyGeneration && rec.generation.load(std::memory_order_relaxed) != gen)) {
        lk.unlock();
        throw_closed(fd, what);
      }
      // An edge came while the syscall ran: retry it instead of parking.
      if (IoRecord::tick(cur) != IoRecord::tick(seen) && (cur & bit) != 0) return true;
      // The bit (if set) is from before the syscall, which consumed it: clear
      // it at this tick (Tokio's clear_readiness) and park.
      if ((cur & bit) == 0) break;
      if (rec.readiness.compare_exchange_weak(cur, cur & ~bit, std::memory_order_acq_rel)) break;
    }
    scheduler_of(*self).count(Counter::io_waits);
    reactor.add_waiter();
    struct Count {
      Reactor& r;
      ~Count() { r.remove_waiter(); }
    } count{reactor};
    const WaitSite site{what, &rec, self->site()};
    st = queue.park_status(lk, slot, site, deadline);
  }
  if (!SyncQueue::finish_park(st, slot, "weft::io: an fd record was destroyed")) return false;
  if (slot.closed) throw_closed(fd, what);
  return true;
}

bool wait_ready(int fd, std::uint32_t gen, IoDirection d, Deadline deadline, const char* what) {
  if (fd < 0) throw_io_error(EBADF, fmt::format("{} fd {}", what, fd));
  // The probe is poll(2) with a zero timeout: "not ready" is io_call's EAGAIN.
  pollfd p{fd, static_cast<short>(d == IoDirection::read ? POLLIN : POLLOUT), 0};
  const ssize_t r = io_call(fd, gen, d, deadline, what, [&]() -> ssize_t {
    const int n = ::poll(&p, 1, 0);
    if (n == 0) errno = EAGAIN;
    return n > 0 ? n : -1;
  });
  if (r >= 0) return true;
  if (errno == ETIMEDOUT) return false;
  throw_io_error(errno, fmt::format("{} fd {}", what, fd));
}

}  // namespace weft::detail

namespace weft::io {

using detail::IoDirection;

void wait_readable(int fd, weft::source_location where) {
  weft::detail::note_site(where);
  (void)detail::wait_ready(fd, detail::kAnyGeneration, IoDirection::read, Deadline::max(),
                           "weft::io::wait_readable");
}
void wait_writable(int fd, weft::source_location where) {
  weft::detail::note_site(where);
  (void)detail::wait_ready(fd, detail::kAnyGeneration, IoDirection::write, Deadline::max(),
                           "weft::io::wait_writable");
}
bool wait_readable_until(int fd, Deadline deadline, weft::source_location where) {
  weft::detail::note_site(where);
  return detail::wait_ready(fd, detail::kAnyGeneration, IoDirection::read, deadline,
                            "weft::io::wait_readable_until");
}
bool wait_writable_until(int fd, Deadline deadline, weft::source_location where) {
  weft::detail::note_site(where);
  return detail::wait_ready(fd, detail::kAnyGeneration, IoDirection::write, deadline,
                            "weft::io::wait_writable_until");
}

std::size_t read_some(int fd, std::span<std::byte> buf, weft::source_location where) {
  weft::detail::note_site(where);
  return detail::transfer(fd, detail::kAnyGeneration, IoDirection::read, buf.empty(),
                          "weft::io::read_some",
                          [&] { return ::read(fd, buf.data(), buf.size()); });
}

std::size_t write_some(int fd, std::span<const std::byte> buf, weft::source_location where) {
  weft::detail::note_site(where);
  // A socket is written with send(MSG_NOSIGNAL): a peer that went away is
  // EPIPE, not a process-killing SIGPIPE. Anything else (a pipe) with write(2).
  bool socket = true;
  return detail::transfer(fd, detail::kAnyGeneration, IoDirection::write, buf.empty(),
                          "weft::io::write_some", [&] {
                            if (socket) {
                              const ssize_t r = ::send(fd, buf.data(), buf.size(), MSG_NOSIGNAL);
                              if (r >= 0 || errno != ENOTSOCK) return r;
                              socket = false;
                            }
                            return ::write(fd, buf.data(), buf.size());
                          });
}

}  // namespace weft::io
