// Monitor: one thread per runtime that keeps a busy worker from holding back
// the rest (DESIGN 3.14), in the spirit of Go's sysmon.
//
// Every `interval` while any worker is awake it samples each worker's
// run_seq(); a worker whose fiber has not switched out since the last sample
// is *stuck* (one fiber has run for at least an interval). For a stuck worker
// it
//   1. fires the worker's due timers (their fibers go to the injection
//      queue), and sleeps no later than the worker's next deadline (for a
//      worker whose fiber started since the last sample too: if that fiber
//      still runs at the deadline, the worker counts as stuck then);
//   2. when work waits that the stuck worker would run next (its LIFO slot,
//      deque or yield queue, or the injection queue), wakes an idle worker
//      to take it (Scheduler::notify_work; the thief's steal_stranded takes
//      a stuck worker's LIFO slot);
//   3. when that work is still waiting a sample later, or no worker is idle
//      to take it, asks the running fiber to yield at its next
//      check_interrupt() (Worker::preempt_running): with one worker this is
//      what lets a timeout's caller run and interrupt a CPU loop.
// When every worker sleeps, the monitor sleeps until a worker wakes
// (kick()). Not started in deterministic mode (its driver preempts instead).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

namespace weft::detail {

class Scheduler;
class Worker;

class Monitor {
 public:
  Monitor(Scheduler& s, std::chrono::microseconds interval) noexcept
      : sched_(s), interval_(interval) {}
  Monitor(const Monitor&) = delete;
  Monitor& operator=(const Monitor&) = delete;
  ~Monitor() { stop(); }

  // start() starts the thread (no-op when the interval is zero).
  void start();
  // stop() ends and joins the thread; idempotent.
  void stop() noexcept;
  // kick() wakes the monitor if it sleeps because every worker slept (a
  // worker calls it when it wakes). One load when it does not (seq_cst: the
  // other half of the Dekker pair in park_while_all_asleep).
  void kick() noexcept {
    if (parked_.load(std::memory_order_seq_cst)) wake();
  }

 private:
  void run();
  // report_stall() reports the fiber running on `w` since run_seq `seq`;
  // false when it already switched out.
  bool report_stall(Worker& w, std::uint64_t seq, std::chrono::steady_clock::duration ran);
  void wake() noexcept;
  bool park_while_all_asleep();

  Scheduler& sched_;
  const std::chrono::microseconds interval_;
  std::thread thread_;
  std::atomic<std::uint32_t> word_{0};  // futex word: 1 = woken
  std::atomic<bool> parked_{false};     // sleeping until kick()
  std::atomic<bool> stop_{false};
};

}  // namespace weft::detail
