// Reactor: see reactor.hpp and docs/internals.md ("The I/O reactor").
#include "io/reactor.hpp"

#include "io/ops.hpp"

#include <weft/detail/assert.hpp>

#include <fmt/format.h>

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <ctime>

namespace weft::detail {

namespace {
// Events taken per epoll_wait: more are left for the next call.
constexpr int kMaxEvents = 256;
// Bits of an epoll event that let a reader (writer) make progress: data,
// end of stream, or an error its next syscall reports.
constexpr std::uint32_t kReadEvents = EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLHUP | EPOLLERR;
constexpr std::uint32_t kWriteEvents = EPOLLOUT | EPOLLHUP | EPOLLERR;
}  // namespace

Reactor::Reactor() {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) throw_io_error(errno, "weft::io: epoll_create1");
  event_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd_ < 0) {
    const int err = errno;
    ::close(epoll_fd_);
    throw_io_error(err, "weft::io: eventfd");
  }
  // Level-triggered, data.ptr nullptr: poll() reads it back to zero.
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, event_fd_, &ev) != 0) {
    const int err = errno;
    ::close(event_fd_);
    ::close(epoll_fd_);
    throw_io_error(err, "weft::io: epoll_ctl ADD eventfd");
  }
}

Reactor::~Reactor() {
  WEFT_ASSERT(waiters() == 0, "Reactor destroyed with {} fibers parked on I/O", waiters());
  forget_reactor(this);
  ::close(event_fd_);
  ::close(epoll_fd_);
}

void Reactor::register_fd(IoRecord& rec, int fd) {
  if (rec.owned.load(std::memory_order_acquire) &&
      rec.reactor.load(std::memory_order_acquire) == this)
    return;  // an Fd's fd, registered here once for its life
  // Edge-triggered, both directions, once: no epoll_ctl per wait, no
  // EPOLLONESHOT (Tokio, Asio). An fd that is ready already when added
  // reports an event at once, so nothing is missed by adding it late.
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET;
  ev.data.ptr = &rec;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0 && errno != EEXIST) {
    if (errno == EPERM)
      throw_io_error(EPERM, fmt::format("weft::io: fd {} cannot be polled (a regular file? "
                                        "use weft::blocking for files)",
                                        fd));
    throw_io_error(errno, fmt::format("weft::io: epoll_ctl ADD fd {}", fd));
  }
  rec.reactor.store(this, std::memory_order_release);
}

void Reactor::deregister(int fd) noexcept {
  epoll_event ev{};
  (void)::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, &ev);  // ENOENT etc.: already gone
}

void Reactor::wake() noexcept {
  const std::uint64_t one = 1;
  // EAGAIN: the counter is full, so the eventfd is readable already.
  (void)!::write(event_fd_, &one, sizeof one);
}

std::size_t Reactor::poll(std::optional<Clock::time_point> deadline) {
  std::array<epoll_event, kMaxEvents> events;
  int n;
  if (!deadline) {
    n = ::epoll_wait(epoll_fd_, events.data(), kMaxEvents, -1);
  } else {
    // Compare before subtracting: poll_now() passes time_point::min().
    const Clock::time_point now = Clock::now();
    const auto left = *deadline > now
                          ? std::chrono::duration_cast<std::chrono::nanoseconds>(*deadline - now)
                          : std::chrono::nanoseconds::zero();
    // epoll_pwait2 (Linux 5.11): a nanosecond timeout, so a 20 ms read
    // deadline is not rounded up to the next millisecond.
    const timespec ts{static_cast<time_t>(left.count() / 1'000'000'000),
                      static_cast<long>(left.count() % 1'000'000'000)};
    n = ::epoll_pwait2(epoll_fd_, events.data(), kMaxEvents, &ts, nullptr);
    if (n < 0 && errno == ENOSYS) {  // an older kernel: milliseconds, rounded up
      const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
      n = ::epoll_wait(epoll_fd_, events.data(), kMaxEvents,
                       static_cast<int>(std::min<std::int64_t>(ms, 1 << 30)));
    }
  }
  last_poll_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
  if (n <= 0) return 0;  // timed out, or EINTR
  std::size_t woken = 0;
  for (int i = 0; i < n; ++i) {
    void* ptr = events[static_cast<std::size_t>(i)].data.ptr;
    if (ptr == nullptr) {
      std::uint64_t count;
      (void)!::read(event_fd_, &count, sizeof count);
      continue;
    }
    woken += dispatch(*static_cast<IoRecord*>(ptr), events[static_cast<std::size_t>(i)].events);
  }
  return woken;
}

std::size_t Reactor::poll_now() {
  if (waiters() == 0 || poller_.load(std::memory_order_seq_cst) != nullptr) return 0;
  return poll(Clock::time_point::min());
}

std::size_t Reactor::poll_if_stale(std::chrono::microseconds interval) {
  if (waiters() == 0 || poller_.load(std::memory_order_seq_cst) != nullptr) return 0;
  const Clock::time_point last{Clock::duration(last_poll_.load(std::memory_order_relaxed))};
  if (Clock::now() - last < interval) return 0;
  return poll(Clock::time_point::min());
}

std::size_t Reactor::dispatch(IoRecord& rec, std::uint32_t events) noexcept {
  std::uint64_t bits = 0;
  if ((events & kReadEvents) != 0) bits |= IoRecord::kReadable;
  if ((events & kWriteEvents) != 0) bits |= IoRecord::kWritable;
  if (bits == 0) return 0;
  // A new tick with the new bits, then each ready direction's waiters under
  // its queue lock: a waiter that checked the tick under that lock before
  // us is parked and gets woken; one that checks after sees the tick.
  std::uint64_t cur = rec.readiness.load(std::memory_order_relaxed);
  while (!rec.readiness.compare_exchange_weak(
      cur, ((IoRecord::tick(cur) + 1) << IoRecord::kTickShift) | (cur & IoRecord::kBits) | bits,
      std::memory_order_acq_rel)) {
  }
  std::size_t woken = 0;
  auto nothing = [](Waiter*) {};
  if ((bits & IoRecord::kReadable) != 0) {
    std::unique_lock lk(rec.readers.lock());
    woken += rec.readers.wake_all(lk, nothing);
  }
  if ((bits & IoRecord::kWritable) != 0) {
    std::unique_lock lk(rec.writers.lock());
    woken += rec.writers.wake_all(lk, nothing);
  }
  return woken;
}

}  // namespace weft::detail
