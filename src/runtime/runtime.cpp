#include <weft/runtime.hpp>

#include "runtime/dump_signal.hpp"
#include "scheduler/scheduler.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace weft {

namespace {
constexpr unsigned kMaxWorkers = 1024;
}  // namespace

Runtime::Runtime(RuntimeOptions options) {
  if (options.stack_size < detail::StackPool::kMinStackSize)
    throw std::invalid_argument(
        fmt::format("weft: RuntimeOptions::stack_size = {} is below the minimum of {} bytes",
                    options.stack_size, detail::StackPool::kMinStackSize));
  if (options.stack_size > detail::StackPool::kMaxStackSize)
    throw std::invalid_argument(
        fmt::format("weft: RuntimeOptions::stack_size = {} is above the maximum of {} bytes",
                    options.stack_size, detail::StackPool::kMaxStackSize));
  if (options.workers > kMaxWorkers)
    throw std::invalid_argument(
        fmt::format("weft: RuntimeOptions::workers = {} is above the maximum of {}",
                    options.workers, kMaxWorkers));
  if (options.monitor_interval.count() < 0)
    throw std::invalid_argument(
        fmt::format("weft: RuntimeOptions::monitor_interval = {} us is negative",
                    options.monitor_interval.count()));
  if (options.blocking_threads == 0)
    throw std::invalid_argument(
        "weft: RuntimeOptions::blocking_threads = 0; weft::blocking() needs at least one thread");
  if (options.blocking_idle.count() < 0)
    throw std::invalid_argument(fmt::format(
        "weft: RuntimeOptions::blocking_idle = {} ms is negative", options.blocking_idle.count()));
  scheduler_ = std::make_unique<detail::Scheduler>(options);
  options_ = scheduler_->options();
  dump_signal_ = std::make_unique<detail::DumpSignal>(*scheduler_, options_.dump_signal);
}

Runtime::~Runtime() {
  if (detail::current_scheduler() == scheduler_.get()) {
    std::fprintf(stderr,
                 "weft: Runtime destroyed from its own fiber %s; destroy it from the thread "
                 "that owns it\n",
                 fmt::format("{}", detail::current_id()).c_str());
    std::abort();
  }
  scheduler_->shutdown(options_.shutdown_grace);  // a dump signal still dumps a hung shutdown
  dump_signal_.reset();
  scheduler_.reset();
}

void Runtime::check_accepting(const char* what) const {
  if (!scheduler_->accepting())
    throw std::logic_error(
        fmt::format("weft: Runtime::{} on a runtime that is shutting down", what));
  if (detail::current_scheduler() == scheduler_.get() && std::string_view(what) == "block_on")
    throw std::logic_error(fmt::format(
        "weft: Runtime::block_on called from its own fiber {}; await a spawned Fiber instead",
        detail::current_id()));
}

RuntimeStats Runtime::stats() const noexcept {
  RuntimeStats s;
  s.live_fibers = scheduler_->live();
  s.stacks_in_use = scheduler_->stacks().in_use();
  s.workers = scheduler_->worker_count();
  s.unfinished_roots = scheduler_->unfinished_roots();
  const detail::BlockingPool::Stats blocking = scheduler_->blocking_pool().stats();
  s.blocking_threads = blocking.threads;
  s.blocking_queued = blocking.queued;
  using detail::Counter;
  detail::Scheduler& sched = *scheduler_;
  s.fibers_forked = sched.counted(Counter::forked);
  s.fibers_live = s.live_fibers;
  s.fibers_peak = std::max(sched.sample_peak(), s.live_fibers);
  s.parks = sched.counted(Counter::parks);
  s.steals = sched.counted(Counter::steals);
  s.interrupts_requested = sched.counted(Counter::interrupts_requested);
  s.interrupts_delivered = sched.counted(Counter::interrupts_delivered);
  s.interrupts_unwound = sched.counted(Counter::interrupts_unwound);
  for (unsigned i = 0; i < sched.worker_count(); ++i)
    s.timers_fired += sched.worker(i).timers().fired_total();
  s.io_waits = sched.counted(Counter::io_waits);
  return s;
}

std::string Runtime::dump() const { return scheduler_->dump(); }

}  // namespace weft
