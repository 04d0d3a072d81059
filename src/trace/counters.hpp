// EventCounters: the monotonic event counts behind Runtime::stats(). Each
// worker owns one block on cache lines of its own and bumps it with a relaxed
// load and store (no read-modify-write: only its thread writes it); events
// on threads that are not workers (a plain thread interrupting a fiber, the
// monitor, the blocking pool) go to one shared block with fetch_add. A read
// sums the blocks with relaxed loads: each counter is exact once the events
// it counts happened-before the read, and otherwise a recent value (cf.
// Go's per-P sched stats and Tokio's per-worker MetricsBatch).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace weft::detail {

// Counter names one event count.
enum class Counter : std::uint8_t {
  forked,                // fibers started (fork, fork_daemon, spawn, block_on)
  parks,                 // fiber suspensions at a wait
  steals,                // fibers taken from another worker's queues
  interrupts_requested,  // interrupt requests (one per requester and target)
  interrupts_delivered,  // fibers an interrupt began to end (first delivery each)
  io_waits,              // fiber waits on an fd's readiness that went to park
  direct_switches,       // yields and parks that switched straight to the next fiber
  direct_exits,          // fiber ends that switched straight to the next fiber
  interrupts_unwound,    // interrupts delivered by the unwinder's phase 2 alone
  kCount,
};

// EventCounters is one block of counters (see the file comment).
struct alignas(64) EventCounters {
  static constexpr std::size_t kCount = static_cast<std::size_t>(Counter::kCount);
  std::array<std::atomic<std::uint64_t>, kCount> values{};

  // bump_owned() counts one event; only the block's owner thread calls it.
  void bump_owned(Counter c) noexcept {
    auto& v = values[static_cast<std::size_t>(c)];
    v.store(v.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  // bump_shared() counts one event from any thread.
  void bump_shared(Counter c) noexcept {
    values[static_cast<std::size_t>(c)].fetch_add(1, std::memory_order_relaxed);
  }
  // get() is the count so far (relaxed: a statistic, orders nothing).
  std::uint64_t get(Counter c) const noexcept {
    return values[static_cast<std::size_t>(c)].load(std::memory_order_relaxed);
  }
};

static_assert(sizeof(EventCounters) % 64 == 0, "whole cache lines per worker's counters");

}  // namespace weft::detail
