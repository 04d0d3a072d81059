// Worker: the scheduling loop of one OS thread.
//
// Order of picking work (most-recent-first keeps a fork tree depth-first and
// its live set small; cf. Go's runnext and Tokio's LIFO slot):
//   1. every 61st tick the injection queue and the yielded fibers first
//      (fairness, as in Go);
//   2. the LIFO slot, at most kLifoBudget times in a row;
//   3. the own deque's bottom (LIFO);
//   4. the injection queue;
//   5. the fibers that yielded here (FIFO);
//   6. stealing: random victims' deque tops and yield queues (FIFO), then,
//      after the idle worker's nap, the LIFO slot of a victim that has been
//      running one fiber since the spin began (steal_stranded).
//
// Waking (DESIGN 3.14): a push to the deque or the injection queue calls
// Scheduler::notify_work(), which wakes a sleeper only when no worker is
// spinning (Go's wakep rule: a burst of pushes wakes one worker, not one
// each). A woken or idle worker counts itself spinning while it looks for
// work; the last spinner to find work wakes another, so work that keeps
// coming keeps one worker looking. A push to the LIFO slot wakes nobody (see
// push_local); a slot stranded behind a fiber that keeps computing is the
// monitor's case (monitor.hpp).

#include "scheduler/scheduler.hpp"

#include "fiber/fiber_control.hpp"
#include "fiber/run_state.hpp"
#include "io/reactor.hpp"
#include "scheduler/fence.hpp"
#include "scheduler/futex.hpp"
#include "wait/thread_parker.hpp"

#include <pthread.h>

#include <string>
#include <utility>

namespace weft::detail {

namespace {
constexpr unsigned kLifoBudget = 16;
// An idle worker probes for work kSpinRounds times, kSpinPauses pauses apart,
// then naps kSpinNap while still counted as spinning, probes once more, and
// only then sleeps. The nap is Go's trick (its spinning M sleeps before it
// steals a runnext): a stream of pushes finds the worker still "spinning"
// and wakes nobody, the nap costs no CPU, and a fiber left in the LIFO slot
// of a worker that ran one fiber through the whole nap is stranded: the
// napper takes it (steal_stranded).
constexpr unsigned kSpinRounds = 16;
constexpr unsigned kSpinPauses = 8;
constexpr auto kSpinNap = std::chrono::microseconds(50);
constexpr unsigned kFairnessTicks = 61;  // a prime, as Go's schedtick % 61
constexpr unsigned kTimerTicks = 16;     // due timers checked every 16 picks
// A thief takes up to half of a victim's deque per visit, at most this many
// (Go's runqgrab takes half of a 256-slot ring; Tokio's steal_into half of
// 256). Bounded so that one visit stays short and a victim that is forking a
// tree is not emptied of its whole frontier by the first thief.
constexpr std::size_t kStealBatch = 32;

thread_local Worker* tls_worker = nullptr;

void entry(void* arg) {
  auto* f = static_cast<FiberControl*>(arg);
  f->worker()->complete_switch_in(f);  // a direct switch's first run
  f->run_on_own_stack();
}
}  // namespace

namespace {
thread_local constinit FiberCore* tls_current_fiber = nullptr;
}  // namespace

// Accessors are noinline so that no caller caches a thread-local address
// across a context switch (a fiber may resume on another thread).
[[gnu::noinline]] Worker* current_worker_any() noexcept {
  asm volatile("" ::: "memory");
  return tls_worker;
}
void Worker::set_current(Worker* w) noexcept { tls_worker = w; }

[[gnu::noinline]] FiberCore* current_fiber() noexcept {
  asm volatile("" ::: "memory");
  return tls_current_fiber;
}
[[gnu::noinline]] WaitOwner& current_parker() noexcept {
  asm volatile("" ::: "memory");
  if (FiberCore* f = tls_current_fiber) return control(*f);
  return this_thread_parker();
}

Worker::Worker(Scheduler& s, unsigned index, std::uint64_t seed)
    : sched_(s),
      index_(index),
      seen_seq_(s.options().workers, 0),
      rng_(seed * kWorkerSeedMul + index + 1) {}

void Worker::start() {
  thread_ = std::thread([this] { run(); });
  std::string name =
      sched_.options().name.substr(0, kThreadNamePrefix) + "/" + std::to_string(index_);
  pthread_setname_np(thread_.native_handle(), name.c_str());
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::push_local(FiberControl* f) {
  // Replay: one push in kReplayDequeOneIn goes behind the older work.
  constexpr std::uint64_t kReplayDequeOneIn = 4;  // a power of two
  if (sched_.deterministic() && (xorshift(rng_) & (kReplayDequeOneIn - 1)) == 0) {
    deque_.push(f);  // replay: sometimes behind the older work, not next
    return;
  }
  // acq_rel: a thief that exchanges the slot sees the fiber's state.
  FiberControl* displaced = lifo_slot_.exchange(f, std::memory_order_acq_rel);
  if (displaced != nullptr) {
    deque_.push(displaced);
    sched_.notify_work(/*after_plain_store=*/true);
  }
  // The slot itself wakes nobody: this worker runs it next, unless the fiber
  // running here keeps computing, and then the monitor wakes a thief for it
  // (steal_stranded). Waking on every slot push (Go's wakep on runnext)
  // measured +40-60% on yield_pingpong and +30% on spawn_join with two
  // workers here (micro_liveness, the kernels): hand-offs and fork/join
  // would pay a futex wake for work their own worker runs next.
}

FiberControl* Worker::steal(bool desperate) noexcept {
  if (FiberControl* f = deque_.steal()) return f;
  return steal_unqueued(desperate);
}

FiberControl* Worker::steal_unqueued(bool desperate) noexcept {
  if (FiberControl* f = yielded_.steal()) return f;
  if (desperate && lifo_slot_.load(std::memory_order_relaxed) != nullptr)
    return lifo_slot_.exchange(nullptr, std::memory_order_acq_rel);
  return nullptr;
}

bool Worker::has_queued_work() const noexcept {
  return !deque_.empty_approx() || !yielded_.empty_approx();
}

bool Worker::has_stealable_work() const noexcept {
  return has_queued_work() || lifo_slot_.load(std::memory_order_relaxed) != nullptr;
}

// wake()/wake_spinning(): the word, then the futex, or the eventfd of a
// worker asleep in epoll_wait (Dekker with idle(): it sets polling_, then
// re-reads the word before blocking; all seq_cst).
void Worker::wake() noexcept { wake_with(kWoken); }

void Worker::wake_spinning() noexcept { wake_with(kWokenSpinning); }

void Worker::wake_with(std::uint32_t word) noexcept {
  wake_word_.store(word, std::memory_order_seq_cst);
  if (polling_.load(std::memory_order_seq_cst)) {
    if (Reactor* r = sched_.reactor_if_any()) r->wake();
  }
  futex_wake(wake_word_);
}

void Worker::stop_spinning() noexcept {
  if (!spinning_) return;
  spinning_ = false;
  // The last spinner found work: there may be more, keep one worker looking.
  if (sched_.spinning_.fetch_sub(1, std::memory_order_seq_cst) == 1) sched_.notify_work();
}

void Worker::run() {
  tls_worker = this;
  context_init_thread(sched_ctx_);
  install_overflow_handler_for_thread();
  for (;;) {
    if (FiberControl* f = next()) {
      stop_spinning();
      run_fiber(f);
      continue;
    }
    if (sched_.stopping()) break;
    idle();
  }
  if (spinning_) {
    spinning_ = false;
    sched_.spinning_.fetch_sub(1, std::memory_order_seq_cst);
  }
  tls_worker = nullptr;
}

FiberControl* Worker::next() {
  if (sched_.deterministic()) return next_shuffled();
  ++tick_;
  if (tick_ % kFairnessTicks == 0) {
    if (FiberControl* f = sched_.pop_injected()) return f;
    if (FiberControl* f = take_yielded()) return f;
  }
  if (tick_ % kTimerTicks == 0) fire_timers();
  if (lifo_streak_ < kLifoBudget) {
    if (FiberControl* f = lifo_slot_.exchange(nullptr, std::memory_order_acq_rel)) {
      ++lifo_streak_;
      return f;
    }
  }
  lifo_streak_ = 0;
  if (FiberControl* f = deque_.pop()) return f;
  if (FiberControl* f = lifo_slot_.exchange(nullptr, std::memory_order_acq_rel)) return f;
  if (FiberControl* f = sched_.pop_injected()) return f;
  if (FiberControl* f = take_yielded()) return f;
  if (fire_timers()) return next();
  // Our queues are empty: collect I/O readiness before stealing, without
  // blocking (Go's findrunnable: netpoll(0) before stealing). Skipped when
  // nobody waits on I/O or a poller sleeps in epoll_wait (it gets the events).
  if (Reactor* r = sched_.reactor_if_any(); r != nullptr && r->poll_now() > 0) {
    if (FiberControl* f = lifo_slot_.exchange(nullptr, std::memory_order_acq_rel)) return f;
    if (FiberControl* f = deque_.pop()) return f;
  }
  return steal_any(false);
}

// take_yielded() returns the oldest fiber that yielded here: the owner takes
// its yield queue from the top, the same end thieves steal from.
FiberControl* Worker::take_yielded() { return yielded_.steal(); }

FiberControl* Worker::steal_any(bool desperate) {
  const unsigned n = sched_.worker_count();
  if (n <= 1) return nullptr;
  const unsigned start = static_cast<unsigned>(xorshift(rng_) % n);
  for (unsigned i = 0; i < n; ++i) {
    Worker& victim = sched_.worker((start + i) % n);
    if (&victim == this) continue;
    // Batch stealing (ChaseLevDeque::steal_half): run the oldest, keep up to
    // half of the rest in our deque. Not in a deterministic scheduler, whose
    // seeded steps take one fiber each (replays keep their shape).
    FiberControl* f = nullptr;
    if (sched_.deterministic()) {
      f = victim.steal(desperate);
    } else {
      std::size_t moved = 0;
      f = victim.deque_.steal_half(deque_, kStealBatch, &moved);
      for (std::size_t k = 0; k < moved; ++k) counters_.bump_owned(Counter::steals);
      if (f == nullptr) f = victim.steal_unqueued(desperate);
    }
    if (f != nullptr) return stolen(f, victim);
  }
  return nullptr;
}

// stolen() counts and traces f, taken from victim's queues, and returns it.
FiberControl* Worker::stolen(FiberControl* f, const Worker& victim) noexcept {
  counters_.bump_owned(Counter::steals);
  if (Tracer* t = sched_.tracer()) [[unlikely]]
    t->steal(*this, *f, victim.index());
  return f;
}

// steal_stranded() takes the LIFO slot of a victim that has been running the
// same fiber since this worker began to spin (seen_seq_): a fiber forked just
// before a long computation. A victim that switched meanwhile will take its
// slot itself (cf. Go's runnext, stolen only from a P that keeps running).
FiberControl* Worker::steal_stranded() {
  const unsigned n = sched_.worker_count();
  for (unsigned i = 0; i < n; ++i) {
    Worker& victim = sched_.worker(i);
    if (&victim == this) continue;
    const std::uint64_t seq = victim.run_seq();
    if ((seq & 1) == 0 || seq != seen_seq_[i]) continue;
    if (victim.lifo_slot_.load(std::memory_order_relaxed) == nullptr) continue;
    if (FiberControl* f = victim.lifo_slot_.exchange(nullptr, std::memory_order_acq_rel))
      return stolen(f, victim);
  }
  return nullptr;
}

bool Worker::fire_timers() {
  auto next = timers_.next_deadline();
  if (!next) return false;
  auto now = sched_.now();
  if (*next > now) return false;
  return timers_.fire_expired(now) > 0;
}

void Worker::idle() {
  // Spin: look for work, counted in Scheduler::spinning_ so that pushers do
  // not wake another worker meanwhile.
  if (!spinning_) {
    spinning_ = true;
    sched_.spinning_.fetch_add(1, std::memory_order_seq_cst);
  }
  const unsigned n = sched_.worker_count();
  for (unsigned i = 0; i < n; ++i) seen_seq_[i] = sched_.worker(i).run_seq();
  auto found = [this](FiberControl* f) {
    stop_spinning();
    run_fiber(f);
  };
  for (unsigned round = 0; round < kSpinRounds; ++round) {
    if (FiberControl* f = steal_any(false)) return found(f);
    if (sched_.has_injected() || fire_timers() || has_stealable_work()) return;
    for (unsigned i = 0; i < kSpinPauses; ++i) cpu_relax();
  }
  // The nap (still spinning). Only stop() stores to our wake word now: we
  // are on no sleeper list.
  wake_word_.store(kAsleep, std::memory_order_relaxed);
  if (!sched_.stopping()) futex_wait(wake_word_, kAsleep, Clock::now() + kSpinNap);
  if (FiberControl* f = steal_any(false)) return found(f);
  if (FiberControl* f = steal_stranded()) return found(f);
  if (sched_.has_injected() || fire_timers() || has_stealable_work()) return;
  // About to sleep: give back what a burst of forks left in our deques (the
  // buffers growth replaced, the pages of a large empty one; ChaseLevDeque,
  // "Giving memory back").
  deque_.trim();
  yielded_.trim();
  // Stop spinning, then re-check: a pusher that saw us spinning woke nobody.
  spinning_ = false;
  sched_.spinning_.fetch_sub(1, std::memory_order_seq_cst);
  wake_word_.store(kAsleep, std::memory_order_relaxed);
  sched_.add_sleeper(this);
  // Re-check after announcing ourselves (the pusher reads sleepers_ after
  // pushing; both sides are seq_cst, so one of us sees the other). The fence
  // pairs with the one a deque pusher issues in notify_work: our queue reads
  // below are relaxed. (TSan: add_sleeper's RMW pairs with the pusher's.)
  fence_seq_cst();
  // Another worker's LIFO slot does not count: its owner runs it next, and
  // if the owner is stuck the monitor wakes a thief for it (steal_stranded).
  bool work = sched_.has_injected() || sched_.stopping() || has_stealable_work();
  for (unsigned i = 0; !work && i < n; ++i) work = sched_.worker(i).has_queued_work();
  std::optional<Clock::time_point> deadline;
  for (unsigned i = 0; i < n; ++i) {
    auto d = sched_.worker(i).timers().next_deadline();
    if (d && (!deadline || *d < *deadline)) deadline = d;
  }
  if (deadline && *deadline <= sched_.now()) work = true;
  if (!work) sleep_until(deadline);
  if (!sched_.remove_sleeper(this)) {
    // A waker took us off the list: its wake_word_ store may still be on
    // its way (we may have woken by the deadline). Wait for it, to learn
    // whether it counted us as spinning.
    while (wake_word_.load(std::memory_order_acquire) == 0) cpu_relax();
  }
  if (wake_word_.load(std::memory_order_acquire) == kWokenSpinning) spinning_ = true;
  sched_.monitor_.kick();
  // Timers of other workers that are busy with a long-running fiber.
  for (unsigned i = 0; i < n; ++i) {
    Worker& w = sched_.worker(i);
    if (&w == this) continue;
    auto d = w.timers().next_deadline();
    if (d && *d <= sched_.now()) w.timers().fire_expired(sched_.now());
  }
}

// sleep_until() is the idle worker's sleep: on its futex, or, as the one
// poller, in the reactor's epoll_wait when fibers wait on I/O (Go's
// netpoller: a worker with nothing to run polls instead of sleeping). Either
// way wake() ends it, and so does `deadline` (the earliest timer).
void Worker::sleep_until(std::optional<Clock::time_point> deadline) {
  Reactor* r = sched_.reactor_if_any();
  if (r == nullptr || r->waiters() == 0 || !r->try_become_poller(this)) {
    futex_wait(wake_word_, kAsleep, deadline);
    return;
  }
  polling_.store(true, std::memory_order_seq_cst);
  if (wake_word_.load(std::memory_order_seq_cst) == kAsleep) (void)r->poll(deadline);
  polling_.store(false, std::memory_order_seq_cst);
  r->stop_polling();
}

void Worker::start_fiber_stack(FiberControl* f) {
  FiberContext& fc = f->context();
  std::size_t size = f->stack_size_request();
  if (size == sched_.default_stack_size()) size = 0;
  fc.stack = sched_.stacks().acquire(index_, size);
  fc.info =
      RunningFiberInfo{&fc.stack, f->id().value(), f->name().empty() ? nullptr : f->name().c_str()};
  context_make(fc.ctx, fc.stack, &entry, f);
}

// prepare_run() makes f ready to switch to (runnable -> running, its stack on
// a first run); false when it ended unstarted instead (DESIGN 3.2).
bool Worker::prepare_run(FiberControl* f) {
  switch (f->begin_run(this, &preempt_)) {
    case RunStart::ended_unstarted:
      finish(f, /*on_fiber_stack=*/false);
      return false;
    case RunStart::first_run:
      start_fiber_stack(f);
      break;
    case RunStart::resumed:
      break;
  }
  return true;
}

// switched_in()/switched_out(): the bookkeeping of every switch into and out
// of a fiber here, the same for the worker loop and a direct switch.
void Worker::switched_in(FiberControl* f) noexcept {
  tls_current_fiber = &f->core();
  set_running_fiber(&f->context().info);
  running_.store(f, std::memory_order_relaxed);
  // release: the monitor that reads this count (acquire) sees running_.
  run_seq_.store(run_seq_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  if (Tracer* t = sched_.tracer()) [[unlikely]]
    run_start_ = t->run_begin(*this, *f);
}

// switched_out() runs after f's context is saved: in the worker loop, or on
// the stack of the fiber f switched to directly (finish_handoff). The
// running-fiber records are the caller's: the loop clears them, a direct
// switch overwrites them in switched_in (an exit clears them first: it may
// free f here).
void Worker::switched_out(FiberControl* f) {
  if (Tracer* t = sched_.tracer()) [[unlikely]]
    t->run_end(*this, *f, run_start_);
  run_seq_.store(run_seq_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  FiberContext& fc = f->context();
  if (!fc.stack.guarded && !stack_canary_intact(fc.stack))
    report_canary_overflow(f->id().value(), fc.info.name, fc.stack.size);
  after_switch(f);
}

void Worker::run_fiber(FiberControl* f) {
  while (f != nullptr) {
    if (!prepare_run(f)) return;
    switched_in(f);
    context_switch(sched_ctx_, f->context().ctx);
    // Back in the loop: the fiber that switched here is the last one
    // switched in, f or one reached from f by direct switches.
    set_running_fiber(nullptr);
    tls_current_fiber = nullptr;
    switched_out(running_.load(std::memory_order_relaxed));
    // A fiber that ended by a direct switch with the runtime's reference as
    // its last: its Exit's destructors run here, on no fiber's stack.
    if (FiberControl* d = std::exchange(release_in_loop_, nullptr)) d->core().release();
    // A fiber pick_direct() left for us to end unstarted (begin_run ends it).
    f = std::exchange(ends_unstarted_, nullptr);
  }
}

bool Worker::timers_due() const noexcept {
  auto next = timers_.next_deadline();
  return next && *next <= sched_.now();
}

// pick_direct() mirrors next() over this worker's own queues (same order,
// same tick_ and LIFO budget) and declines wherever next() would do more:
// replay, the fairness tick, due timers, injected fibers, I/O, stealing.
// Cf. Go's runtime: a goroutine that blocks calls schedule() on its own M
// (g0 stack) rather than returning to a loop; here the pick runs on the
// outgoing fiber's stack and the incoming one finishes the switch-out.
FiberControl* Worker::pick_direct(FiberControl* from) {
  if (sched_.deterministic()) return nullptr;
  const std::uint64_t tick = tick_ + 1;
  if (tick % kFairnessTicks == 0) return nullptr;
  if (tick % kTimerTicks == 0 && timers_due()) return nullptr;
  FiberControl* f = nullptr;
  if (lifo_streak_ < kLifoBudget) {
    f = lifo_slot_.exchange(nullptr, std::memory_order_acq_rel);
    if (f != nullptr) ++lifo_streak_;
  }
  if (f == nullptr) {
    lifo_streak_ = 0;
    // The emptiness checks spare a lone yielder the fenced pop and steal on
    // empty deques (next() repeats them): the owner's bottom is exact and
    // top only grows, so "looks empty" is empty.
    if (!deque_.empty_approx()) f = deque_.pop();
    if (f == nullptr) f = lifo_slot_.exchange(nullptr, std::memory_order_acq_rel);
    if (f == nullptr && !yielded_.empty_approx() && !sched_.has_injected()) f = take_yielded();
    if (f == nullptr) return nullptr;  // next() finds the same: nothing taken
  }
  tick_ = tick;
  switch (f->begin_run_direct(this, &preempt_)) {
    case RunStart::ended_unstarted:
      ends_unstarted_ = f;  // run_fiber ends it after our switch-out
      return nullptr;
    case RunStart::first_run:
      start_fiber_stack(f);
      break;
    case RunStart::resumed:
      break;
  }
  handoff_from_ = from;
  counters_.bump_owned(Counter::direct_switches);
  return f;
}

// pick_direct_exit() declines, beyond pick_direct()'s cases, while a fiber
// waits in release_in_loop_ (one at a time: the loop drops it). The rest of
// the exit is the same after_switch() as in the loop, run by the incoming
// fiber (finish_handoff): context_destroy (TSan's fiber, after the switch
// away), the stack back to this worker's pool, finish().
FiberControl* Worker::pick_direct_exit(FiberControl* from) {
  if (release_in_loop_ != nullptr) return nullptr;
  FiberControl* f = pick_direct(from);
  if (f != nullptr) counters_.bump_owned(Counter::direct_exits);
  return f;
}

// finish_handoff() runs on `in`'s stack right after a direct switch into it:
// the outgoing fiber's context is saved, so it can be published now.
void Worker::finish_handoff(FiberControl* in) {
  FiberControl* out = std::exchange(handoff_from_, nullptr);
  switched_out(out);  // the running-fiber records still name `out`...
  switched_in(in);    // ...until here (an exiting `out` clears them first)
}

void Worker::after_switch(FiberControl* f) {
  switch (f->on_switched_out()) {
    case AfterSwitch::yielded:
      yielded_.push(f);
      break;
    case AfterSwitch::requeue:  // parked, and woken while parking
      counters_.bump_owned(Counter::parks);
      push_local(f);
      break;
    case AfterSwitch::parked:
      counters_.bump_owned(Counter::parks);
      break;
    case AfterSwitch::exited:
      release_exited(f);
      break;
  }
}

// release_exited() is the rest of an exit, after the switch away from f: in
// the worker loop, or on the stack of the fiber a direct exit switched to.
// Out of line: the yield and park cases of after_switch() stay small.
[[gnu::noinline]] void Worker::release_exited(FiberControl* f) {
  FiberContext& fc = f->context();
  // The worker loop cleared the running-fiber records before this
  // switch-out; after a direct exit they still name f, on the incoming
  // fiber's stack: clear them (f may be freed below) until switched_in.
  const bool on_fiber_stack = tls_current_fiber != nullptr;
  if (on_fiber_stack) {
    set_running_fiber(nullptr);
    tls_current_fiber = nullptr;
  }
  context_destroy(fc.ctx);  // TSan's fiber: destroyed after the switch away
  sched_.stacks().release(index_, fc.stack);
  fc.stack = Stack{};
  finish(f, on_fiber_stack);
}

// hazard_fence() is finish()'s half of inspect_running()'s Dekker pair: a
// seq_cst fence (one locked instruction per fiber end). Whatever worker's
// run_seq_ the monitor validated, the switch-out that changed it happens
// before this fence (on this worker, or on the one the fiber parked or
// yielded on, then synchronised through its wake or queue), so either the
// monitor's seq_cst re-read sees the change (C++20 [atomics.order] p4.2) or
// our seq_cst load of the slot sees its fiber. TSan ignores fences: there,
// a seq_cst no-op RMW on our run_seq_ (TSan checks the reads' happens-before,
// given by the slot's release store and our load, not this order).
void Worker::hazard_fence() noexcept { store_load_barrier(run_seq_); }

// finish() ends f's life as a running fiber: in the worker loop, or on the
// stack of the fiber its exit switched to (`on_fiber_stack`), where the
// runtime's reference is dropped only if it is not the last (the last one
// runs the Exit's destructors, user code: the loop drops it).
void Worker::finish(FiberControl* f, bool on_fiber_stack) {
  // Wait while the monitor reads this fiber (see hazard_fence()). Once past
  // here no monitor can start reading f: f is no longer the running fiber
  // of any worker's current run_seq_, so this is the only check needed
  // before any release of f's control block (later ones are handles').
  hazard_fence();
  if (sched_.inspected_.load(std::memory_order_seq_cst) == f) [[unlikely]] {
    sched_.hazard_waits_.fetch_add(1, std::memory_order_relaxed);
    while (sched_.inspected_.load(std::memory_order_seq_cst) == f) cpu_relax();
  }
  f->retire();
  add_live(-1);
  if (!on_fiber_stack) {
    f->core().release();  // the runtime's reference
  } else if (!f->core().release_unless_last()) {
    release_in_loop_ = f;  // pick_direct_exit() declines until the loop drops it
  }
}

}  // namespace weft::detail
