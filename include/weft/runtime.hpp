// Runtime: owns the worker threads, the stacks and every fiber started on it.
#pragma once

#include <weft/detail/fiber_core.hpp>
#include <weft/exit.hpp>
#include <weft/fiber.hpp>
#include <weft/signals.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>

namespace weft {

// RuntimeOptions configures a Runtime.
struct RuntimeOptions {
  unsigned workers = 0;                     // 0: std::thread::hardware_concurrency()
  std::size_t stack_size = 256 * 1024;      // default usable stack per fiber (>= 16 KiB)
  std::size_t stack_cache_per_worker = 64;  // stacks each worker keeps for reuse
  std::size_t guard_budget = 0;             // max guard-paged stacks; 0: from vm.max_map_count
  std::chrono::milliseconds shutdown_grace{5000};  // ~Runtime reports fibers still alive after this
  std::uint64_t seed = 0;  // steal-victim randomisation seed (0: fixed default)
  // deterministic (test-only): run all `workers` on ONE OS thread and take
  // every scheduling decision from `seed` (which worker steps next, which of
  // its queues it pops, where a woken fiber goes, steal victims), with a
  // virtual clock (this_fiber::now()) that advances 1 us per scheduling step
  // and jumps to the next timer when every fiber is blocked. The same seed
  // and the same program replay the same interleaving, interrupts included,
  // as long as no plain thread interacts with the fibers while they run.
  bool deterministic = false;
  std::string name = "weft";  // prefix of worker thread names
  // monitor_interval: how often the runtime's monitor thread looks at busy
  // workers while any worker is awake (it sleeps when all do). A worker
  // that has run one fiber for an interval is "stuck": the monitor fires
  // its due timers, wakes an idle worker for the work queued behind it, and
  // a sample later asks the fiber to yield at its next check_interrupt().
  // So a due timer fires within about two intervals of its deadline
  // whatever the fibers compute (DESIGN 3.14). Zero: no monitor (a fiber
  // that never yields then holds back its worker's timers and queue).
  std::chrono::microseconds monitor_interval{1000};
};

// RuntimeStats is a snapshot of a runtime's counters.
struct RuntimeStats {
  std::int64_t live_fibers = 0;      // started and not yet fully ended (stack returned)
  std::size_t stacks_in_use = 0;     // stacks handed out by the pool
  unsigned workers = 0;              // worker threads
  std::size_t unfinished_roots = 0;  // root and daemon fibers whose Exit is not yet published
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
  [[nodiscard]] auto block_on(F&& f, ForkOptions options = {}) -> Exit<std::invoke_result_t<F>> {
    check_accepting("block_on");
    return spawn(std::forward<F>(f), std::move(options)).await();
  }
  // spawn() starts f as a root fiber (no parent) from any thread.
  template <class F>
  auto spawn(F&& f, ForkOptions options = {}) -> Fiber<std::invoke_result_t<F>> {
    using R = std::invoke_result_t<F>;
    check_accepting("spawn");
    detail::check_stack_size(options.stack_size, "ForkOptions::stack_size");
    auto* core = new detail::FiberTask<R, std::decay_t<F>>(*scheduler_, nullptr, options,
                                                           std::forward<F>(f));
    Fiber<R> handle{detail::FiberRef(core)};
    detail::start_fiber(core, /*root=*/true);
    return handle;
  }
  // block_on_main() runs f as the process's main fiber: a listed signal
  // interrupts it; returns the exit status for main() (see weft/signals.hpp).
  template <class F>
  int block_on_main(F&& f, std::initializer_list<int> signals = {SIGINT, SIGTERM}) {
    detail::MainSignals routing(signals);  // handlers before the fiber starts
    ForkOptions options;
    options.name = "main";
    auto main = spawn(std::forward<F>(f), std::move(options));
    const int status = routing.run(main.core());
    if constexpr (std::is_same_v<std::invoke_result_t<F>, int>) {
      if (status == 0) return main.core().exit().value();
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
  RuntimeOptions options_;
  std::unique_ptr<detail::Scheduler> scheduler_;
};

}  // namespace weft
