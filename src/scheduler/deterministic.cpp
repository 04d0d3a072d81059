// The deterministic driver (RuntimeOptions::deterministic): every worker of
// the scheduler runs on one OS thread, one seeded scheduling step at a time,
// with a virtual clock. The same seed and program replay the same
// interleaving (tests/test_replay.cpp).
#include "scheduler/scheduler.hpp"

#include "io/reactor.hpp"
#include "scheduler/futex.hpp"

#include <pthread.h>

#include <string>

namespace weft::detail {

// next_shuffled(): the deterministic scheduler's pick. Due timers fire
// first (virtual time), then the sources are tried in a seeded order, so a
// seed covers interleavings that most-recent-first would rarely produce.
FiberControl* Worker::next_shuffled() {
  fire_timers();
  const std::uint64_t r = xorshift(rng_);
  constexpr unsigned kSources = 5;  // the cases below
  const unsigned first = static_cast<unsigned>(r % kSources);
  for (unsigned i = 0; i < kSources; ++i) {
    FiberControl* f = nullptr;
    switch ((first + i) % kSources) {
      case 0:
        f = lifo_slot_.exchange(nullptr, std::memory_order_acq_rel);
        break;
      case 1:
        f = deque_.pop();
        break;
      case 2:
        f = sched_.pop_injected();
        break;
      case 3:
        f = take_yielded();
        break;
      default:
        f = steal_any(((r >> 8) & 1) != 0);
        break;
    }
    if (f != nullptr) return f;
  }
  return nullptr;
}

void Worker::drive(Scheduler& s) {
  constexpr auto kStep = std::chrono::microseconds(1);
  for (auto& w : s.workers_) context_init_thread(w->sched_ctx_);
  install_overflow_handler_for_thread();
  pthread_setname_np(pthread_self(),
                     (s.options().name.substr(0, kThreadNamePrefix) + "/det").c_str());
  const unsigned n = s.worker_count();
  for (;;) {
    // Draw from the seed only when there is work: the idle loop's count of
    // rounds depends on when a plain thread injects, and must not shift it.
    bool work = s.has_injected();
    for (unsigned i = 0; !work && i < n; ++i) {
      Worker& w = *s.workers_[i];
      auto d = w.timers_.next_deadline();
      work = w.has_stealable_work() || (d && *d <= s.now());
    }
    // One step: a seeded worker (the next ones in turn if it has nothing)
    // runs one fiber until that fiber switches out.
    bool ran = false;
    const unsigned start = work ? static_cast<unsigned>(xorshift(s.driver_rng_) % n) : 0;
    for (unsigned i = 0; work && i < n && !ran; ++i) {
      Worker& w = *s.workers_[(start + i) % n];
      set_current(&w);
      if (FiberControl* f = w.next()) {
        s.advance_clock(s.now() + kStep);
        // Every check_interrupt() is a scheduling step here (DESIGN 3.14):
        // a CPU loop that checks gives way, and virtual time advances.
        w.preempt_running();
        w.run_fiber(f);
        ran = true;
      }
    }
    if (ran) continue;
    // Every fiber is blocked: collect I/O readiness first; then jump the
    // virtual clock to the earliest timer (so under virtual time a deadline
    // fires as soon as nothing else can run, before I/O that is not ready).
    if (Reactor* r = s.reactor_if_any(); r != nullptr && r->poll_now() > 0) continue;
    std::optional<Clock::time_point> due;
    for (auto& w : s.workers_) {
      auto d = w->timers_.next_deadline();
      if (d && (!due || *d < *due)) due = d;
    }
    if (due) {
      s.advance_clock(*due);
      continue;
    }
    if (s.stopping()) break;
    // Nothing to do until a plain thread injects a fiber or stops us.
    Worker& w0 = *s.workers_[0];
    w0.wake_word_.store(kAsleep, std::memory_order_relaxed);
    s.add_sleeper(&w0);
    if (!s.has_injected() && !s.stopping()) w0.sleep_until(std::nullopt);  // or in epoll_wait
    if (!s.remove_sleeper(&w0)) {
      while (w0.wake_word_.load(std::memory_order_acquire) == 0) cpu_relax();
    }
    // The driver never spins: give back a count a waker made for it.
    if (w0.wake_word_.load(std::memory_order_acquire) == kWokenSpinning)
      s.spinning_.fetch_sub(1, std::memory_order_seq_cst);
  }
  set_current(nullptr);
}

}  // namespace weft::detail
