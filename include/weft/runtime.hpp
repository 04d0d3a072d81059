// Runtime: owns the worker threads, the stacks and every fiber started on it.
#pragma once

#include <weft/detail/fiber_core.hpp>
#include <weft/exit.hpp>
#include <weft/fiber.hpp>
#include <weft/fork_options.hpp>
#include <weft/runtime_options.hpp>

#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <weft/source_location.hpp>
#include <string>
#include <type_traits>

namespace weft::detail {
class DumpSignal;
}  // namespace weft::detail

namespace weft {

// RuntimeStats is a snapshot of a runtime's counters. The event counts are
// monotonic and summed from per-worker counters on read: each is exact for
// events that happened-before the call, and may lag events racing with it.
struct RuntimeStats {
  std::int64_t live_fibers = 0;      // started and not yet fully ended (stack returned)
  std::size_t stacks_in_use = 0;     // stacks handed out by the pool
  unsigned workers = 0;              // worker threads
  std::size_t unfinished_roots = 0;  // root and daemon fibers whose Exit is not yet published
  std::size_t blocking_threads = 0;  // threads of weft::blocking() (busy or idle)
  std::size_t blocking_queued = 0;   // weft::blocking() calls waiting for a thread
  std::uint64_t fibers_forked = 0;   // fibers started: fork, fork_daemon, spawn, block_on
  std::int64_t fibers_live = 0;      // the same value as live_fibers (DESIGN 5's name)
  // fibers_peak: the highest fibers_live seen, sampled after each of a
  // worker's first 64 forks, after every 64th one, and by each stats() call,
  // so a lower bound of the true peak (a global count would cost every fork
  // a shared atomic).
  std::int64_t fibers_peak = 0;
  std::uint64_t parks = 0;   // times a fiber suspended at a wait (not a yield; not a plain thread)
  std::uint64_t steals = 0;  // fibers a worker took from another worker's queues
  std::uint64_t interrupts_requested = 0;  // interrupt requests, one per requester and target
  // interrupts_delivered: fibers an interrupt began to end: the first
  // Interrupted thrown in each fiber, or an unstarted fiber it ended.
  std::uint64_t interrupts_delivered = 0;
  // interrupts_unwound: of those, the ones delivered by the unwinder's second
  // phase alone (RuntimeOptions::interrupt_unwind), not thrown.
  std::uint64_t interrupts_unwound = 0;
  // timers_fired: timer entries whose deadline passed while armed: a
  // sleep's end, a wait's deadline (even if a wake-up claimed the wait first).
  std::uint64_t timers_fired = 0;
  std::uint64_t io_waits = 0;  // fiber waits for an fd's readiness that went to park
};

// Runtime runs fibers on a pool of work-stealing workers.
class Runtime {
 public:
  // Runtime() starts the workers; throws std::invalid_argument on bad options.
  explicit Runtime(RuntimeOptions options = {});
  // ~Runtime() interrupts every live fiber, waits for their finalizers and
  // joins the workers. Calling it from one of its own fibers aborts with a message.
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // block_on() runs f as a root fiber and blocks this thread until it ends.
  template <class F>
  [[nodiscard]] auto block_on(F&& f, ForkOptions options = {})
      -> Exit<std::invoke_result_t<std::decay_t<F>&>> {
    check_accepting("block_on");
    return spawn(std::forward<F>(f), std::move(options)).await();
  }
  // spawn() starts f as a root fiber (no parent) from any thread. Like
  // fork, it runs a decay-copy of f, called as an lvalue. A root starts
  // with every FiberLocal at its initial value, even when spawned from a
  // fiber (fork_daemon copies the forker's).
  template <class F>
  auto spawn(F&& f, ForkOptions options = {}) -> Fiber<std::invoke_result_t<std::decay_t<F>&>> {
    using R = std::invoke_result_t<std::decay_t<F>&>;
    check_accepting("spawn");
    auto* core = detail::make_fiber(*scheduler_, nullptr, options, std::forward<F>(f));
    Fiber<R> handle{detail::FiberRef(core)};
    detail::start_fiber(core, /*root=*/true);
    return handle;
  }
  // block_on_main() runs f as the process's main fiber: a listed signal
  // interrupts it; returns the exit status for main() (see weft/signals.hpp).
  template <class F>
  int block_on_main(F&& f, std::initializer_list<int> signals = {SIGINT, SIGTERM}) {
    using R = std::invoke_result_t<std::decay_t<F>&>;
    check_accepting("block_on_main");
    ForkOptions options;
    options.name = "main";
    Fiber<R> main{
        detail::FiberRef(detail::make_fiber(*scheduler_, nullptr, options, std::forward<F>(f)))};
    const int status = run_main(detail::core_of(main), signals);
    if constexpr (std::is_same_v<R, int>) {
      if (status == 0) return detail::core_of(main).exit().value();
    }
    return status;
  }
  // stats() reads the live counters (for leak checks and dumps).
  RuntimeStats stats() const noexcept;
  // dump() describes every live fiber: id, name, parent, state, what it waits on.
  std::string dump() const;
  // options() are the options in force (workers resolved).
  const RuntimeOptions& options() const noexcept { return options_; }

 private:
  void check_accepting(const char* what) const;
  // run_main() installs the signal handlers, starts `main` as a root fiber
  // and routes signals to it until it ended (src/runtime/signals.cpp).
  int run_main(detail::FiberCore& main, std::initializer_list<int> signals);
  RuntimeOptions options_;
  std::unique_ptr<detail::Scheduler> scheduler_;
  std::unique_ptr<detail::DumpSignal> dump_signal_;  // RuntimeOptions::dump_signal
};

}  // namespace weft
