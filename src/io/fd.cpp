// weft::io::Fd and pipe(), and Fd::close()'s protocol (close_fd): wake the
// waiters with EBADF before the number can be reused (DESIGN 3.13).
#include "io/ops.hpp"
#include "io/reactor.hpp"

#include <weft/io.hpp>

#include <fmt/format.h>

#include <fcntl.h>
#include <unistd.h>

#include <stdexcept>
#include <thread>

namespace weft::detail {

std::uint32_t FdAccess::generation(const io::Fd& fd) noexcept { return fd.generation_; }

void close_fd(int fd) noexcept {
  IoRecord& rec = record_for(fd);
  // 1. Closed: calls that start from now on fail with EBADF (OpScope), and
  //    waiters that have not parked yet see it under their queue lock.
  rec.readiness.fetch_or(IoRecord::kClosed, std::memory_order_seq_cst);
  // 2. Wake every parked waiter with `closed` (they throw EBADF).
  for (SyncQueue* q : {&rec.readers, &rec.writers}) {
    std::unique_lock lk(q->lock());
    q->wake_all(lk, [](Waiter* w) { SyncQueue::slot_of<IoSlot>(w).closed = true; });
  }
  // 3. Wait for syscalls in progress (short: the fd is non-blocking).
  while (rec.users.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
  // 4. Deregister, start a new generation, then close(2): nobody can be
  //    parked on the number or inside a call on it any more.
  if (Reactor* r = rec.reactor.exchange(nullptr, std::memory_order_acq_rel)) r->deregister(fd);
  rec.owned.store(false, std::memory_order_release);
  {
    std::lock_guard rl(rec.readers.lock());  // always readers, then writers
    std::lock_guard wl(rec.writers.lock());
    rec.generation.fetch_add(1, std::memory_order_seq_cst);
    const std::uint64_t cur = rec.readiness.load(std::memory_order_relaxed);
    rec.readiness.store((IoRecord::tick(cur) + 1) << IoRecord::kTickShift,
                        std::memory_order_seq_cst);
  }
  ::close(fd);  // an error (EINTR, EIO) still releases the number on Linux
}

}  // namespace weft::detail

namespace weft::io {

Fd::Fd(int fd) {
  if (fd < 0) throw std::invalid_argument(fmt::format("weft::io::Fd: invalid fd {}", fd));
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || (!(flags & O_NONBLOCK) && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0))
    detail::throw_io_error(errno, fmt::format("weft::io::Fd: making fd {} non-blocking", fd));
  detail::IoRecord& rec = detail::record_for(fd);
  rec.owned.store(true, std::memory_order_release);
  generation_ = rec.generation.load(std::memory_order_acquire);
  fd_.store(fd, std::memory_order_relaxed);
}

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    close();
    generation_ = other.generation_;
    fd_.store(other.release_number(), std::memory_order_relaxed);
  }
  return *this;
}

int Fd::release_number() noexcept { return fd_.exchange(-1, std::memory_order_acq_rel); }

int Fd::release() noexcept {
  const int fd = release_number();
  // The registration stays; a wait on the raw number re-registers it.
  if (fd >= 0) detail::record_for(fd).owned.store(false, std::memory_order_release);
  return fd;
}

void Fd::close() noexcept {
  const int fd = release_number();
  if (fd >= 0) detail::close_fd(fd);
}

std::pair<Fd, Fd> pipe() {
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) detail::throw_io_error(errno, "weft::io::pipe");
  return {Fd(fds[0]), Fd(fds[1])};
}

}  // namespace weft::io
