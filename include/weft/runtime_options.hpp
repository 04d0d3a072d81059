// RuntimeOptions: the knobs of a Runtime (DESIGN.md §1 "Runtime").
#pragma once

#include <weft/fiber_id.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <weft/source_location.hpp>

namespace weft {

// StallReport names a fiber that has run without reaching a yield point for
// longer than RuntimeOptions::stall_threshold (the usual cause of "my
// interrupt does nothing": a blocking syscall or a loop without
// this_fiber::check_interrupt()).
struct StallReport {
  FiberId fiber;
  std::string name;                        // the fiber's name ("" when none)
  unsigned worker = 0;                     // the worker it runs on
  std::chrono::milliseconds running{};     // how long it has run so far
  weft::source_location last_yield_point;  // line 0 when it never reached one
};

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
  // interrupt_unwind (experimental, x86-64 Linux with libstdc++): deliver an
  // interrupt to a fiber parked in a weft wait by the C++ unwinder's second
  // phase alone (_Unwind_ForcedUnwind) when a walk of its stack finds no
  // catch clause between the wait and the fiber's body (for a timeout's
  // deadline or a race sibling's win, the timeout's or the race's own
  // frame); else, and on other targets, it is thrown as always. Finalizers
  // run as for the throw, in the same order, with std::uncaught_exceptions()
  // > 0; `catch` clauses are never passed (a stack with one gets the throw).
  // 13-23 % less per interrupt (docs/performance.md, "Round 4" and "Round
  // 5"). The environment
  // variable WEFT_INTERRUPT_UNWIND=1 (or 0) overrides it for every Runtime.
  // Off by default: proven on g++ 12, x86-64, with this suite only
  // (docs/internals.md, "Delivery by the unwinder's phase 2 alone").
  bool interrupt_unwind = false;
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
  // blocking_threads: the most threads weft::blocking() runs calls on at
  // once (>= 1); calls beyond it queue, first come first served. Threads
  // start on demand, so the cap costs nothing until calls pile up. 64, not
  // Tokio's 512: a blocked call mostly waits (DNS, disk, a C library), so
  // the cap bounds memory and file descriptors more than CPU, and 64 stacks
  // (8 MiB of address space each, a few KiB touched) suit a 2-core box while
  // still overlapping 64 slow lookups. Go has no cap (a thread per blocked
  // syscall); raise this for a program that blocks on many slow calls.
  unsigned blocking_threads = 64;
  // blocking_idle: how long a blocking-call thread waits for a new call
  // before it ends (Tokio's thread_keep_alive, 10 s by default); >= 0.
  std::chrono::milliseconds blocking_idle{10000};
  // dump_signal: a signal (e.g. SIGUSR1) that writes Runtime::dump() to
  // stderr; 0: none. The handler only writes a byte to a pipe; a thread
  // formats the dump (docs/debugging.md).
  int dump_signal = 0;
  // stall_threshold: the monitor reports a fiber that has run this long
  // without reaching a yield point (needs monitor_interval > 0). Negative:
  // the default, 100 ms when weft is built with assertions (debug builds),
  // off otherwise; zero: off. Costs nothing per switch.
  std::chrono::milliseconds stall_threshold{-1};
  // on_stall receives each report, on the monitor thread, once per stall;
  // empty: the report is written to stderr.
  std::function<void(const StallReport&)> on_stall{};
  // trace_path: when not empty, the runtime writes a Chrome/Perfetto trace
  // (JSON; docs/debugging.md) of its fibers to this file: forks, run slices
  // per worker, parks, wakes, steals, interrupts, finalizers, exits. The
  // file is complete when ~Runtime returns; Runtime() throws
  // std::system_error when it cannot create it. Empty (default): no trace,
  // at the cost of one predictable branch per event.
  std::string trace_path{};
};

}  // namespace weft
