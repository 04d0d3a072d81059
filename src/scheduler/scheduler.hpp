// Scheduler: N workers with Chase-Lev deques and LIFO slots, a global
// lock-free injection queue, random-victim batch stealing and futex parking. One per Runtime;
// no global or static scheduler state. See docs/internals.md.
#pragma once

#include <weft/runtime.hpp>
#include "fiber/fiber_control.hpp"

#include "context/context.hpp"
#include "context/stack.hpp"
#include "io/blocking_pool.hpp"
#include "runtime/debug_registry.hpp"
#include "scheduler/chase_lev_deque.hpp"
#include "scheduler/inject_queue.hpp"
#include "scheduler/monitor.hpp"
#include "timer/timer_heap.hpp"
#include "trace/counters.hpp"
#include "trace/tracer.hpp"

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace weft::detail {

// Seeds: each worker's victim generator and the deterministic driver's are
// derived from RuntimeOptions::seed by multiplying with odd 64-bit
// constants (2^64 / the golden ratio, and SplitMix64's mixing constants:
// Steele, Lea and Flood, "Fast splittable pseudorandom number generators",
// OOPSLA 2014), so that seeds 0, 1, 2... give unrelated streams.
inline constexpr std::uint64_t kWorkerSeedMul = 0x9E3779B97F4A7C15ull;
inline constexpr std::uint64_t kDriverSeedMul = 0xD1B54A32D192ED03ull;
inline constexpr std::uint64_t kDriverSeedAdd = 0x8BB84B93962EACC9ull;
// kThreadNamePrefix: characters of RuntimeOptions::name kept in a thread's
// name; Linux allows 15, and the suffix ("/det", "/mon", "/12") the rest.
inline constexpr std::size_t kThreadNamePrefix = 10;

class Scheduler;
class Reactor;

// Worker is one OS thread running fibers.
class Worker {
 public:
  Worker(Scheduler& s, unsigned index, std::uint64_t seed);
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // start()/join() the OS thread.
  void start();
  void join();
  // push_local() makes f the next fiber to run here (owner thread only); a
  // fiber it displaces from the LIFO slot goes to the deque and an idle
  // worker is woken if none is spinning (Scheduler::notify_work). A fiber
  // left in the slot behind a long computation is handed to an idle worker
  // by the monitor.
  void push_local(FiberControl* f);
  // drive() runs every worker of a deterministic scheduler on the calling
  // thread, one seeded scheduling step at a time, until the scheduler stops.
  static void drive(Scheduler& s);
  // steal() takes a fiber from this worker's deque or yield queue (or, when
  // `desperate`, its LIFO slot) for another worker.
  FiberControl* steal(bool desperate) noexcept;
  // steal_unqueued() is steal() without the deque (whose thieves batch:
  // Worker::steal_any): the yield queue, then (`desperate`) the LIFO slot.
  FiberControl* steal_unqueued(bool desperate) noexcept;
  // run_seq() counts this worker's switches into and out of fibers: odd while
  // a fiber runs. Equal odd values seen some time apart mean one fiber has
  // run all that time (the monitor's and idle thieves' test for "stuck").
  std::uint64_t run_seq() const noexcept { return run_seq_.load(std::memory_order_relaxed); }
  // preempt_running() asks the fiber running here to yield at its next
  // check_interrupt() (monitor thread, or the deterministic driver). The flag
  // is the worker's, so the monitor never touches a fiber that may be ending.
  void preempt_running() noexcept { preempt_.store(true, std::memory_order_relaxed); }
  // inspect_running() calls read(f) with the fiber that has been running
  // here since run_seq() was `seq` (monitor thread), and returns true; false,
  // without calling it, when that fiber already switched out. The fiber
  // cannot be freed meanwhile: the monitor publishes it in the scheduler's
  // hazard slot (Scheduler::inspected_, one: there is one monitor), then
  // re-reads run_seq_; every finish(), on whichever worker the fiber ends
  // (it may have parked and moved during the read), fences after the
  // switch-out that changed this run_seq_ and waits while the slot names
  // the fiber (a Dekker pair, see finish()). Defined after Scheduler.
  template <class Read>
  bool inspect_running(std::uint64_t seq, Read&& read);
  // timers() is this worker's timer heap (owner inserts and fires).
  TimerHeap& timers() noexcept { return timers_; }
  // sched_context() is the worker thread's own execution context.
  ExecutionContext& sched_context() noexcept { return sched_ctx_; }
  unsigned index() const noexcept { return index_; }
  Scheduler& scheduler() const noexcept { return sched_; }
  // live_delta() counts fibers started minus ended here (owner writes).
  std::int64_t live_delta() const noexcept { return live_delta_.load(std::memory_order_relaxed); }
  void add_live(std::int64_t d) noexcept {
    live_delta_.store(live_delta_.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
  }
  // counters() are this worker's event counts (owner bumps, anyone reads).
  EventCounters& counters() noexcept { return counters_; }
  const EventCounters& counters() const noexcept { return counters_; }
  // wake() ends this worker's sleep.
  void wake() noexcept;
  // has_stealable_work() is a racy check used before sleeping: the deque,
  // the yield queue or the LIFO slot holds a fiber.
  bool has_stealable_work() const noexcept;
  // has_queued_work() is has_stealable_work() without the LIFO slot.
  bool has_queued_work() const noexcept;
  // wake_spinning() is wake() for a worker that the waker already counted as
  // spinning (Scheduler::notify_work).
  void wake_spinning() noexcept;
  // pick_direct() is the fiber `from` (running here, switching out) should
  // switch straight to, made ready to run; nullptr when `from` must switch to
  // the worker loop instead (docs/internals.md, "Direct switch"). Owner only.
  FiberControl* pick_direct(FiberControl* from);
  // pick_direct_exit() is pick_direct() for a fiber that has ended (its
  // exit switches straight to the result, which then releases its stack and
  // the runtime's reference); nullptr: exit to the worker loop. Owner only.
  FiberControl* pick_direct_exit(FiberControl* from);
  // complete_switch_in() is called by fiber `self` right after it was
  // switched in here (resumed, or at its entry): after a direct switch it
  // finishes the outgoing fiber's switch-out and its own switch-in.
  void complete_switch_in(FiberControl* self) {
    if (handoff_from_ != nullptr) finish_handoff(self);
  }

 private:
  void run();
  FiberControl* next();
  FiberControl* next_shuffled();
  FiberControl* take_yielded();
  FiberControl* steal_any(bool desperate);
  FiberControl* steal_stranded();
  FiberControl* stolen(FiberControl* f, const Worker& victim) noexcept;
  void stop_spinning() noexcept;
  void run_fiber(FiberControl* f);
  bool prepare_run(FiberControl* f);
  void start_fiber_stack(FiberControl* f);
  void switched_in(FiberControl* f) noexcept;
  void switched_out(FiberControl* f);
  void finish_handoff(FiberControl* in);
  bool timers_due() const noexcept;
  void after_switch(FiberControl* f);
  void release_exited(FiberControl* f);
  void finish(FiberControl* f, bool on_fiber_stack);
  void hazard_fence() noexcept;
  void idle();
  void sleep_until(std::optional<Clock::time_point> deadline);
  void wake_with(std::uint32_t word) noexcept;
  bool fire_timers();
  // set_current() sets the worker current_worker_any() returns on this thread.
  static void set_current(Worker* w) noexcept;
  // xorshift() is the seeded generator of steal victims and of the
  // deterministic driver's choices (Marsaglia, "Xorshift RNGs", 2003).
  static std::uint64_t xorshift(std::uint64_t& s) noexcept {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  // wake_word_ values.
  static constexpr std::uint32_t kAsleep = 0;
  static constexpr std::uint32_t kWoken = 1;
  static constexpr std::uint32_t kWokenSpinning = 2;

  Scheduler& sched_;
  const unsigned index_;
  std::thread thread_;
  ChaseLevDeque<FiberControl> deque_;
  alignas(64) std::atomic<FiberControl*> lifo_slot_{nullptr};
  alignas(64) std::atomic<std::int64_t> live_delta_{0};
  EventCounters counters_;  // its own cache line (alignas(64))
  // Fibers that yielded here. The owner pushes at the bottom and takes the
  // oldest from the top with steal(), as thieves do: a FIFO that idle
  // workers can take from when this one is busy (DESIGN 3.14).
  ChaseLevDeque<FiberControl> yielded_;
  unsigned lifo_streak_ = 0;
  // Direct switch (owner only): the fiber that switched straight into the
  // next one, whose switch-out the incoming fiber finishes; and a fiber
  // pick_direct() took that must end unstarted from the worker loop.
  FiberControl* handoff_from_ = nullptr;
  FiberControl* ends_unstarted_ = nullptr;
  // A fiber that ended by a direct switch and whose last reference was the
  // runtime's: its Exit (a user value's or exception's destructor) is
  // destroyed by the worker loop, not on the incoming fiber's stack. At most
  // one: pick_direct_exit() declines while it is set.
  FiberControl* release_in_loop_ = nullptr;
  std::int64_t run_start_ = 0;  // tracer: the running fiber's run_begin
  bool spinning_ = false;       // counted in Scheduler::spinning_ (owner only)
  // run_seq() per victim when this worker started spinning (steal_stranded).
  std::vector<std::uint64_t> seen_seq_;
  std::uint64_t tick_ = 0;
  std::uint64_t rng_;
  TimerHeap timers_;
  ExecutionContext sched_ctx_{};
  // The switch count (owner writes, relaxed; the monitor and thieves read).
  alignas(64) std::atomic<std::uint64_t> run_seq_{0};
  // The fiber running here (owner writes at each switch-in, relaxed).
  std::atomic<FiberControl*> running_{nullptr};
  // Set by the monitor, read and cleared by the running fiber's
  // check_interrupt() (FiberControl::begin_run hands it the address).
  alignas(64) std::atomic<bool> preempt_{false};
  // kAsleep, kWoken, or kWokenSpinning (woken and counted as spinning).
  alignas(64) std::atomic<std::uint32_t> wake_word_{0};
  // polling_: asleep in the reactor's epoll_wait instead of on the futex
  // (wake() then writes the reactor's eventfd). seq_cst with wake_word_.
  std::atomic<bool> polling_{false};
};

// Scheduler owns the workers, the injection queue and the stack pool.
class Scheduler {
 public:
  explicit Scheduler(const RuntimeOptions& options);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // schedule() makes a runnable fiber run: on this worker if the caller is
  // one of ours, else through the injection queue.
  void schedule(FiberControl* f);
  // inject() appends f to the global queue (FIFO but for racing injections)
  // and wakes a sleeper.
  void inject(FiberControl* f);
  // pop_injected() takes the oldest injected fiber, or nullptr.
  FiberControl* pop_injected();
  bool has_injected() const noexcept { return injected_size_.load(std::memory_order_seq_cst) > 0; }
  // notify_work() wakes a sleeping worker when there is one and no worker is
  // spinning (looking for work), counting the woken one as spinning: Go's
  // wakep() rule, so a burst of pushes wakes one worker, not one each. The
  // caller has published its work with a seq_cst read-modify-write (the
  // injection count); `after_plain_store` adds one for a push published
  // with a plain store (a deque push).
  void notify_work(bool after_plain_store = false) noexcept;
  // spinning_workers() is how many workers are looking for work.
  int spinning_workers() const noexcept { return spinning_.load(std::memory_order_seq_cst); }
  // sleeping_workers() is how many workers sleep on their futex.
  int sleeping_workers() const noexcept { return sleepers_.load(std::memory_order_seq_cst); }
  // current_worker() is this thread's worker if it belongs to this scheduler.
  Worker* current_worker() const noexcept;

  // register_root()/unregister_root() track roots and daemons for shutdown.
  void register_root(FiberControl* f);
  void unregister_root(FiberControl* f);
  // add_live() counts fibers started from plain threads.
  void add_live(std::int64_t d) noexcept { live_outside_.fetch_add(d, std::memory_order_relaxed); }
  std::int64_t live() const noexcept;
  // count() counts one event on the calling worker's counters, or on the
  // shared block from a thread that is not one of ours.
  void count(Counter c) noexcept {
    if (Worker* w = current_worker()) {
      w->counters().bump_owned(c);
    } else {
      outside_counters_.bump_shared(c);
    }
  }
  // counted() sums one counter over the workers and the shared block.
  std::uint64_t counted(Counter c) const noexcept;
  // sample_peak() raises the peak of live() to its current value.
  std::int64_t sample_peak() noexcept;
  // tracer() is the trace writer, nullptr when tracing is off (the hooks'
  // one branch: `if (Tracer* t = tracer()) [[unlikely]]`).
  Tracer* tracer() const noexcept {
    if constexpr (WEFT_TRACE_HOOKS != 0) {
      return tracer_.get();
    } else {
      return nullptr;
    }
  }
  std::size_t unfinished_roots() const;

  // shutdown() interrupts every root and waits for all of them to end.
  void shutdown(std::chrono::milliseconds grace);
  bool accepting() const noexcept { return !shutting_down_.load(std::memory_order_acquire); }
  bool stopping() const noexcept { return stopping_.load(std::memory_order_acquire); }

  StackPool& stacks() noexcept { return stacks_; }
  const StackPool& stacks() const noexcept { return stacks_; }
  std::size_t default_stack_size() const noexcept { return options_.stack_size; }
  unsigned worker_count() const noexcept { return static_cast<unsigned>(workers_.size()); }
  Worker& worker(unsigned i) noexcept { return *workers_[i]; }
  const RuntimeOptions& options() const noexcept { return options_; }
  bool deterministic() const noexcept { return options_.deterministic; }
  // interrupt_unwind() is RuntimeOptions::interrupt_unwind, after the
  // WEFT_INTERRUPT_UNWIND environment override.
  bool interrupt_unwind() const noexcept { return options_.interrupt_unwind; }
  // now() is steady_clock, or the virtual clock of a deterministic scheduler.
  Clock::time_point now() const noexcept {
    if (!options_.deterministic) return Clock::now();
    return Clock::time_point(Clock::duration(virtual_ticks_.load(std::memory_order_relaxed)));
  }
  // advance_clock() moves the virtual clock to t if t is later (driver only).
  void advance_clock(Clock::time_point t) noexcept {
    if (t > now()) virtual_ticks_.store(t.time_since_epoch().count(), std::memory_order_relaxed);
  }

  // reactor() is this runtime's I/O reactor, created on first use (a runtime
  // that never waits on an fd has no epoll instance); reactor_if_any() does
  // not create it.
  Reactor& reactor();
  Reactor* reactor_if_any() const noexcept { return reactor_.load(std::memory_order_acquire); }

  // sleeping protocol (Worker::idle)
  void add_sleeper(Worker* w);
  bool remove_sleeper(Worker* w);
  // take_sleeper() takes a worker off the sleeper set, or returns nullptr.
  Worker* take_sleeper() noexcept;
  std::string dump() const;

  // InspectHook: a test's code run by the monitor while it reads a running
  // fiber (inside inspect_running's hazard), to force the reads' races.
  struct InspectHook {
    virtual void reading(FiberControl& f) = 0;

   protected:
    ~InspectHook() = default;
  };
  // set_inspect_hook() installs h (nullptr: none); tests only.
  void set_inspect_hook(InspectHook* h) noexcept {
    inspect_hook_.store(h, std::memory_order_release);
  }
  // inspect_hook() is the installed hook (monitor thread).
  InspectHook* inspect_hook() const noexcept {
    return inspect_hook_.load(std::memory_order_acquire);
  }
  // hazard_waits() counts finish() calls that waited for the monitor's read.
  std::uint64_t hazard_waits() const noexcept {
    return hazard_waits_.load(std::memory_order_relaxed);
  }

 private:
  friend class Worker;
  RuntimeOptions options_;
  StackPool stacks_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::thread driver_;  // the one thread of a deterministic scheduler
  std::uint64_t driver_rng_;
  std::atomic<Clock::rep> virtual_ticks_;

  Monitor monitor_;

  // The injection queue (lock-free ring, mutex only past kCapacity waiting;
  // inject_queue.hpp) and its count: incremented before a push, decremented
  // after a pop, so a positive count may name an item still being pushed
  // (has_injected() then makes an idle worker look again, never sleep).
  InjectQueue<FiberControl> injected_;
  alignas(64) std::atomic<std::int64_t> injected_size_{0};
  // Calls of inject() in progress: ~Scheduler waits for 0 (see inject()).
  std::atomic<int> injecting_{0};

  // The sleeping workers: bit i % 64 of word i / 64 is set while worker i
  // is on the sleeper list (add_sleeper); whoever clears it (a waker in
  // notify_work, or the worker itself in remove_sleeper) takes it off. No
  // lock; the count sleepers_ follows the bits (set before counted, cleared
  // before uncounted) and is what pushers read first.
  std::unique_ptr<std::atomic<std::uint64_t>[]> sleeper_bits_;
  unsigned sleeper_words_ = 0;
  alignas(64) std::atomic<int> sleepers_{0};
  alignas(64) std::atomic<int> spinning_{0};

  mutable std::mutex roots_mu_;
  using RootList = IntrusiveList<FiberControl, &FiberControl::tree_hook>;
  RootList roots_;  // roots and daemons, guarded by roots_mu_
  std::atomic<std::int64_t> live_outside_{0};
  // The highest live() seen by sample_peak() (relaxed CAS-max: a statistic).
  std::atomic<std::int64_t> peak_{0};
  EventCounters outside_counters_;  // events on threads that are not workers
  std::unique_ptr<Tracer> tracer_;  // RuntimeOptions::trace_path; finished in ~Scheduler

  std::atomic<Reactor*> reactor_{nullptr};  // owned; deleted after the workers stop

  std::atomic<bool> shutting_down_{false};
  std::atomic<bool> stopping_{false};

  // The fiber the monitor is reading (a hazard pointer: no worker's
  // finish() releases a fiber while the monitor reads it, wherever it
  // ended; see Worker::inspect_running()). Written by the monitor only.
  alignas(64) std::atomic<FiberControl*> inspected_{nullptr};
  // How many finish() calls found their fiber in inspected_ and waited
  // (bumped only then: a test's evidence that the hazard held).
  std::atomic<std::uint64_t> hazard_waits_{0};
  std::atomic<InspectHook*> inspect_hook_{nullptr};

  // --- weft::blocking (src/io/blocking_pool.hpp) -----------------------------
  // No thread until used. ~Scheduler stops it (joins its threads) after the
  // workers and before the reactor: a thread that has just woken a fiber may
  // still be in notify_work(), which touches the workers and the reactor.
  BlockingPool blocking_pool_{options_};

 public:
  // blocking_pool() runs weft::blocking() calls of this runtime's fibers.
  BlockingPool& blocking_pool() noexcept { return blocking_pool_; }
  const BlockingPool& blocking_pool() const noexcept { return blocking_pool_; }

 private:
  // Lists this runtime for debuggers (tools/gdb/weft.py). Last member: built
  // after, and destroyed before, everything a debugger reads through it.
  DebugRegistration debug_registration_{this};
};

template <class Read>
bool Worker::inspect_running(std::uint64_t seq, Read&& read) {
  // acquire: pairs with the release switch-in that stored running_ first.
  if (run_seq_.load(std::memory_order_acquire) != seq) return false;
  FiberControl* f = running_.load(std::memory_order_relaxed);
  sched_.inspected_.store(f, std::memory_order_seq_cst);
  const bool same = run_seq_.load(std::memory_order_seq_cst) == seq && f != nullptr;
  if (same) read(*f);
  // release: the finish() that waited on f sees the read complete.
  sched_.inspected_.store(nullptr, std::memory_order_release);
  return same;
}

// current_worker_any() is this thread's worker of any scheduler, or nullptr.
Worker* current_worker_any() noexcept;

// clock_now() is the current worker's scheduler clock (virtual when the
// scheduler is deterministic), else steady_clock.
inline Clock::time_point clock_now() noexcept {
  Worker* w = current_worker_any();
  return w != nullptr ? w->scheduler().now() : Clock::now();
}

}  // namespace weft::detail
