// IoRecord: the reactor's per-fd state (docs/internals.md, "The I/O
// reactor"). One record per fd number, in a process-wide table that grows in
// chunks and is never freed, so a record's address is stable and a poller
// may touch the record of an fd that is being closed.
#pragma once

#include <weft/detail/sync_queue.hpp>

#include <atomic>
#include <cstdint>

namespace weft::detail {

class Reactor;

// IoSlot is an I/O waiter's hand-off slot: `closed` when Fd::close() woke it.
struct IoSlot : WaitSlot {
  bool closed = false;
};

struct IoRecord {
  // readiness: kReadable | kWritable | kClosed, and a tick (bits 8..63)
  // that every readiness event increments (Tokio's ScheduledIo): a waiter
  // that saw tick t before its syscall and gets EAGAIN parks only if no
  // event came since t.
  static constexpr std::uint64_t kReadable = 1;
  static constexpr std::uint64_t kWritable = 2;
  static constexpr std::uint64_t kClosed = 4;
  static constexpr std::uint64_t kBits = 0xff;
  static constexpr int kTickShift = 8;
  static std::uint64_t tick(std::uint64_t r) noexcept { return r >> kTickShift; }

  std::atomic<std::uint64_t> readiness{0};
  // Syscalls in progress on the fd (begin_op/end_op): close(2) waits for 0,
  // so no call ever runs on a number that was closed and reused.
  std::atomic<std::uint32_t> users{0};
  // generation: bumped by each Fd::close() (under both queue locks). An Fd
  // remembers the generation it adopted, so a call through a closed Fd
  // fails with EBADF even after the number was reused.
  std::atomic<std::uint32_t> generation{0};
  // reactor: the epoll this fd is registered with (nullptr: none yet).
  std::atomic<Reactor*> reactor{nullptr};
  // owned: an Fd owns the number, so the registration lasts until its
  // close() (a raw fd is re-registered before each park: it may have been
  // closed and reused behind our back).
  std::atomic<bool> owned{false};
  SyncQueue readers;  // parked in wait_readable / read_some / accept / receive_from
  SyncQueue writers;  // parked in wait_writable / write_some / connect / send_to
};

// record_for() is fd's record (fd >= 0), created on first use.
IoRecord& record_for(int fd);

// forget_reactor() clears `r` from every record registered with it (a
// dying Reactor: the next wait on those fds registers with its own runtime).
void forget_reactor(Reactor* r) noexcept;

}  // namespace weft::detail
