// Monitor: see monitor.hpp and docs/internals.md ("The monitor").
#include "scheduler/monitor.hpp"

#include "io/reactor.hpp"
#include "scheduler/futex.hpp"
#include "scheduler/scheduler.hpp"

#include "fiber/fiber_control.hpp"

#include <fmt/format.h>
#include <pthread.h>

#include <cstdio>

#include <optional>
#include <string>
#include <vector>

namespace weft::detail {

void Monitor::start() {
  if (interval_.count() <= 0) return;
  thread_ = std::thread([this] { run(); });
  std::string name = sched_.options().name.substr(0, kThreadNamePrefix) + "/mon";
  pthread_setname_np(thread_.native_handle(), name.c_str());
}

void Monitor::stop() noexcept {
  stop_.store(true, std::memory_order_seq_cst);
  wake();
  if (thread_.joinable()) thread_.join();
}

void Monitor::wake() noexcept {
  parked_.store(false, std::memory_order_relaxed);
  word_.store(1, std::memory_order_release);
  futex_wake(word_);
}

// park_while_all_asleep(): sleep until kick() if every worker sleeps. The
// Dekker pair: we store parked_ then read the sleeper count; a waking worker
// decrements the count (Scheduler::remove_sleeper) then reads parked_.
bool Monitor::park_while_all_asleep() {
  if (sched_.sleeping_workers() < static_cast<int>(sched_.worker_count())) return false;
  word_.store(0, std::memory_order_relaxed);
  parked_.store(true, std::memory_order_seq_cst);
  if (sched_.sleeping_workers() == static_cast<int>(sched_.worker_count()) &&
      !stop_.load(std::memory_order_seq_cst))
    futex_wait(word_, 0, std::nullopt);
  parked_.store(false, std::memory_order_relaxed);
  return true;
}

namespace {

// stall_threshold() resolves RuntimeOptions::stall_threshold's default.
Clock::duration stall_threshold(const RuntimeOptions& o) {
  if (o.stall_threshold.count() >= 0) return o.stall_threshold;
#if defined(WEFT_DEBUG_ASSERTS) || !defined(NDEBUG)
  return std::chrono::milliseconds(100);
#else
  return Clock::duration::zero();
#endif
}

}  // namespace

bool Monitor::report_stall(Worker& w, std::uint64_t seq, std::chrono::steady_clock::duration ran) {
  StallReport r;
  const bool running = w.inspect_running(seq, [&](FiberControl& f) {
    r.fiber = f.id();
    r.name = f.name();
    r.last_yield_point = f.core().site();
    if (Scheduler::InspectHook* h = sched_.inspect_hook()) [[unlikely]]
      h->reading(f);
  });
  if (!running) return false;
  r.worker = w.index();
  r.running = std::chrono::duration_cast<std::chrono::milliseconds>(ran);
  if (const auto& handler = sched_.options().on_stall) {
    handler(r);
    return true;
  }
  const std::string where =
      r.last_yield_point.line() == 0
          ? std::string("none yet")
          : fmt::format("{}:{} ({})", r.last_yield_point.file_name(), r.last_yield_point.line(),
                        r.last_yield_point.function_name());
  std::fputs(fmt::format("weft: fiber {} '{}' has run {} ms on worker {} without reaching a "
                         "yield point (a blocking call, or a loop without "
                         "this_fiber::check_interrupt()?); its last yield point: {}\n",
                         r.fiber, r.name, r.running.count(), r.worker, where)
                 .c_str(),
             stderr);
  return true;
}

void Monitor::run() {
  struct Seen {
    std::uint64_t seq = 0;
    unsigned intervals = 0;   // samples in a row with the same running fiber
    Clock::time_point since;  // when this run was first seen
    bool reported = false;    // as stalled
  };
  const Clock::duration stall = stall_threshold(sched_.options());
  const unsigned n = sched_.worker_count();
  std::vector<Seen> seen(n);
  while (!stop_.load(std::memory_order_seq_cst)) {
    if (park_while_all_asleep()) continue;
    // I/O readiness when no worker has polled for an interval: every worker
    // is busy (Go's sysmon netpoll(0)); the woken fibers are injected.
    if (Reactor* r = sched_.reactor_if_any()) (void)r->poll_if_stale(interval_);
    const Clock::time_point now = Clock::now();
    Clock::time_point wake_at = now + interval_;
    for (unsigned i = 0; i < n; ++i) {
      Worker& w = sched_.worker(i);
      const std::uint64_t seq = w.run_seq();
      if ((seq & 1) == 0 || seq != seen[i].seq) {
        seen[i] = Seen{seq, 0, now, false};
        // A fiber started running here since the last sample: if the
        // worker has a timer due before the next sample, look again then;
        // a worker still in that fiber at its deadline has not fired it.
        if ((seq & 1) != 0)
          if (auto d = w.timers().next_deadline(); d && *d < wake_at) wake_at = *d;
        continue;
      }
      ++seen[i].intervals;
      // The stall detector. Half way, a probe: a fiber that reaches
      // check_interrupt() yields (run_seq changes) and is not reported.
      if (stall > Clock::duration::zero() && !seen[i].reported) {
        const Clock::duration ran = now - seen[i].since;
        if (ran >= stall) {
          seen[i].reported = report_stall(w, seq, ran);
        } else if (ran >= stall / 2) {
          w.preempt_running();
        }
      }
      // 1. Its timers: due ones fire here; sleep no later than the next.
      TimerHeap& timers = w.timers();
      if (auto d = timers.next_deadline(); d && *d <= now) timers.fire_expired(now);
      if (auto d = timers.next_deadline(); d && *d < wake_at) wake_at = *d;
      // 2. and 3. Work waiting for it.
      if (!w.has_stealable_work() && !sched_.has_injected()) continue;
      sched_.notify_work(true);
      const bool nobody_idle = sched_.sleeping_workers() == 0 && sched_.spinning_workers() == 0;
      if (seen[i].intervals >= 2 || nobody_idle) w.preempt_running();
    }
    word_.store(0, std::memory_order_relaxed);
    if (!stop_.load(std::memory_order_seq_cst)) futex_wait(word_, 0, wake_at);
  }
}

}  // namespace weft::detail
