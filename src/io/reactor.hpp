// Reactor: one epoll instance per runtime (docs/internals.md, "The I/O
// reactor"). Each fd is registered once, edge-triggered, with its IoRecord
// as the event's data; a worker with nothing to run polls it instead of
// sleeping (the poller), a worker that finds its queues empty polls it
// without blocking, and the monitor polls it when nobody has for an interval
// (Go's netpoller and sysmon; Tokio's and Asio's one registration per fd).
#pragma once

#include "io/record.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace weft::detail {

class Scheduler;
class Worker;

class Reactor {
 public:
  using Clock = std::chrono::steady_clock;

  // Reactor() creates the epoll instance and its wake-up eventfd
  // (std::system_error when the kernel refuses).
  Reactor();
  ~Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  // register_fd() makes sure `fd` is in this epoll: once for an Fd-owned
  // record, before each park for a raw fd (epoll_ctl ADD; EEXIST is fine).
  void register_fd(IoRecord& rec, int fd);
  // deregister() removes an Fd's registration before its close(2).
  void deregister(int fd) noexcept;

  // poll() waits for events until `deadline` (nullopt: until an event or a
  // wake(); a passed deadline: does not block), claims the waiters of every
  // ready fd and unparks them; returns how many waits it ended.
  std::size_t poll(std::optional<Clock::time_point> deadline);
  // poll_now() is poll() without blocking, skipped when nobody waits on I/O
  // or a poller is blocked in epoll_wait (it gets the events).
  std::size_t poll_now();
  // poll_if_stale() is poll_now() when nobody has polled for `interval`
  // (the monitor's netpoll(0)).
  std::size_t poll_if_stale(std::chrono::microseconds interval);
  // wake() makes a blocked poll() return (an eventfd write).
  void wake() noexcept;

  // try_become_poller()/stop_polling(): the one worker allowed to block in
  // poll() (a CAS on poller_).
  bool try_become_poller(Worker* w) noexcept {
    Worker* expected = nullptr;
    return poller_.compare_exchange_strong(expected, w, std::memory_order_seq_cst);
  }
  void stop_polling() noexcept { poller_.store(nullptr, std::memory_order_seq_cst); }

  // waiters(): fibers parked on I/O (the count decides whether to poll).
  int waiters() const noexcept { return waiters_.load(std::memory_order_seq_cst); }
  void add_waiter() noexcept { waiters_.fetch_add(1, std::memory_order_seq_cst); }
  void remove_waiter() noexcept { waiters_.fetch_sub(1, std::memory_order_seq_cst); }

 private:
  std::size_t dispatch(IoRecord& rec, std::uint32_t events) noexcept;

  int epoll_fd_ = -1;
  int event_fd_ = -1;
  alignas(64) std::atomic<Worker*> poller_{nullptr};
  alignas(64) std::atomic<int> waiters_{0};
  // last_poll_: steady_clock ticks of the last epoll_wait's return.
  alignas(64) std::atomic<Clock::rep> last_poll_{0};
};

}  // namespace weft::detail
