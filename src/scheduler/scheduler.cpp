#include "scheduler/scheduler.hpp"

#include "io/reactor.hpp"
#include "scheduler/fence.hpp"

#include <weft/detail/fiber_group.hpp>
#include <weft/fiber.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace weft::detail {

namespace {
RuntimeOptions resolve(RuntimeOptions o) {
  if (o.workers == 0) o.workers = std::max(1u, std::thread::hardware_concurrency());
  // WEFT_INTERRUPT_UNWIND=1 / =0 overrides RuntimeOptions::interrupt_unwind
  // for every Runtime of the process (how the suite runs with it on).
  if (const char* e = std::getenv("WEFT_INTERRUPT_UNWIND"); e != nullptr && e[0] != '\0')
    o.interrupt_unwind = e[0] == '1';
  return o;
}
StackPoolOptions pool_options(const RuntimeOptions& o) {
  StackPoolOptions p;
  p.stack_size = o.stack_size;
  p.workers = o.workers;
  p.cache_per_worker = o.stack_cache_per_worker;
  p.guard_budget = o.guard_budget;
  return p;
}
}  // namespace

Scheduler::Scheduler(const RuntimeOptions& options)
    : options_(resolve(options)),
      stacks_(pool_options(options_)),
      driver_rng_((options_.seed * kDriverSeedMul + kDriverSeedAdd) | 1),
      virtual_ticks_(Clock::now().time_since_epoch().count()),
      monitor_(*this, options_.monitor_interval) {
  if (!options_.trace_path.empty())
    tracer_ = std::make_unique<Tracer>(options_.trace_path, options_.name, options_.workers);
  sleeper_words_ = (options_.workers + 63) / 64;
  sleeper_bits_ = std::make_unique<std::atomic<std::uint64_t>[]>(sleeper_words_);
  for (unsigned i = 0; i < sleeper_words_; ++i)
    sleeper_bits_[i].store(0, std::memory_order_relaxed);
  workers_.reserve(options_.workers);
  for (unsigned i = 0; i < options_.workers; ++i)
    workers_.push_back(std::make_unique<Worker>(*this, i, options_.seed));
  if (options_.deterministic) {
    driver_ = std::thread([this] { Worker::drive(*this); });
    return;
  }
  try {
    for (auto& w : workers_) w->start();
    monitor_.start();
  } catch (...) {
    // A thread did not start (resource limits): stop and join the ones that
    // did, so the constructor fails with the error instead of terminating.
    stopping_.store(true, std::memory_order_release);
    monitor_.stop();
    for (auto& w : workers_) w->wake();
    for (auto& w : workers_) w->join();
    throw;
  }
}

Scheduler::~Scheduler() {
  stopping_.store(true, std::memory_order_release);
  monitor_.stop();
  for (auto& w : workers_) w->wake();
  if (driver_.joinable()) driver_.join();
  for (auto& w : workers_) w->join();
  // A thread that woke a fiber may still be inside inject() (acquire: its
  // last touch happens-before what we free next).
  while (injecting_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  blocking_pool_.stop();  // a pool thread may still be in notify_work(), which can use the reactor
  delete reactor_.load(std::memory_order_acquire);
  if (tracer_) tracer_->finish();  // every thread that could write an event has stopped
  WEFT_ASSERT(live() == 0, "{} fibers still live at scheduler destruction", live());
}

Reactor& Scheduler::reactor() {
  if (Reactor* r = reactor_.load(std::memory_order_acquire)) return *r;
  auto fresh = std::make_unique<Reactor>();
  Reactor* expected = nullptr;
  if (reactor_.compare_exchange_strong(expected, fresh.get(), std::memory_order_acq_rel))
    return *fresh.release();
  return *expected;  // another fiber created it first
}

Worker* Scheduler::current_worker() const noexcept {
  Worker* w = current_worker_any();
  return (w != nullptr && &w->scheduler() == this) ? w : nullptr;
}

void Scheduler::schedule(FiberControl* f) {
  if (Worker* w = current_worker()) {
    w->push_local(f);
  } else {
    inject(f);
  }
}

void Scheduler::inject(FiberControl* f) {
  // Counted from before the push: once f is queued it may run and end, and
  // the runtime may be destroyed while we are still in notify_work() (a
  // plain thread, an Asio or blocking-pool thread, waking the last fiber).
  injecting_.fetch_add(1, std::memory_order_seq_cst);
  // Counted before it is pushed (seq_cst: the Dekker half with an idle
  // worker's sleeper announcement, see notify_work): a worker that sees the
  // count and not yet the item looks again instead of sleeping.
  injected_size_.fetch_add(1, std::memory_order_seq_cst);
  injected_.push(f);
  notify_work();
  injecting_.fetch_sub(1, std::memory_order_release);  // our last touch of *this
}

FiberControl* Scheduler::pop_injected() {
  // relaxed: a hint; the queue's own acquire orders the item.
  if (injected_size_.load(std::memory_order_relaxed) <= 0) return nullptr;
  FiberControl* f = injected_.try_pop();
  if (f != nullptr) injected_size_.fetch_sub(1, std::memory_order_relaxed);
  return f;
}

void Scheduler::notify_work(bool after_plain_store) noexcept {
  // Dekker with a worker going to sleep: it increments sleepers_ (or
  // decrements spinning_) and then re-checks every queue; we publish work
  // and then read both counts. All seq_cst, so one side sees the other. A
  // push made with a plain store is followed by a seq_cst fence, paired
  // with the one the sleeper issues before its re-check (C++20
  // [atomics.order] p4.3: of two seq_cst fences, the later one's side sees
  // what the other side stored before its fence). Not a read-modify-write
  // of sleepers_: every worker pushes, and an RMW would bounce that line
  // between their cores on each push (src/scheduler/fence.hpp). Under TSan,
  // which does not model fences, the RMW it is: that one pairs with the
  // sleeper's own RMW of sleepers_ (add_sleeper).
  if (after_plain_store) store_load_barrier(sleepers_);
  const int sleepers = sleepers_.load(std::memory_order_seq_cst);
  if (sleepers == 0) return;
  // Go's wakep(): a spinning worker will find the work; otherwise wake one
  // and count it as spinning before it runs, so concurrent pushers do not
  // wake a second one for the same burst.
  if (spinning_.load(std::memory_order_seq_cst) != 0) return;
  int expected = 0;
  if (!spinning_.compare_exchange_strong(expected, 1, std::memory_order_seq_cst)) return;
  Worker* w = take_sleeper();
  if (w == nullptr) {
    spinning_.fetch_sub(1, std::memory_order_seq_cst);
    return;
  }
  w->wake_spinning();
}

// The sleeper set is a bitmask (one word per 64 workers), so adding,
// removing and taking a sleeper are one atomic RMW each, without a lock. The
// bit is set before sleepers_ counts it, and cleared before sleepers_
// uncounts it, all seq_cst: a pusher that reads sleepers_ > 0 after its push
// finds the bit of every sleeper it counted, unless that sleeper was already
// taken (by another waker or by itself, after it re-checked the queues).
void Scheduler::add_sleeper(Worker* w) {
  const unsigned i = w->index();
  sleeper_bits_[i / 64].fetch_or(std::uint64_t{1} << (i % 64), std::memory_order_seq_cst);
  sleepers_.fetch_add(1, std::memory_order_seq_cst);
}

bool Scheduler::remove_sleeper(Worker* w) {
  const unsigned i = w->index();
  const std::uint64_t bit = std::uint64_t{1} << (i % 64);
  if ((sleeper_bits_[i / 64].fetch_and(~bit, std::memory_order_seq_cst) & bit) == 0)
    return false;  // a waker took us
  sleepers_.fetch_sub(1, std::memory_order_seq_cst);
  return true;
}

Worker* Scheduler::take_sleeper() noexcept {
  for (unsigned k = 0; k < sleeper_words_; ++k) {
    std::atomic<std::uint64_t>& word = sleeper_bits_[k];
    std::uint64_t bits = word.load(std::memory_order_seq_cst);
    while (bits != 0) {
      // The highest set bit (any sleeper is correct; the old list woke the
      // most recent sleeper, which a bitmask does not remember).
      const unsigned b = 63u - static_cast<unsigned>(std::countl_zero(bits));
      const std::uint64_t bit = std::uint64_t{1} << b;
      if (word.compare_exchange_weak(bits, bits & ~bit, std::memory_order_seq_cst)) {
        sleepers_.fetch_sub(1, std::memory_order_seq_cst);
        return workers_[k * 64 + b].get();
      }
    }
  }
  return nullptr;
}

void Scheduler::register_root(FiberControl* f) {
  std::lock_guard lk(roots_mu_);
  roots_.push_front(*f);
}

void Scheduler::unregister_root(FiberControl* f) {
  std::lock_guard lk(roots_mu_);
  roots_.remove(*f);
}

std::int64_t Scheduler::live() const noexcept {
  std::int64_t n = live_outside_.load(std::memory_order_relaxed);
  for (auto& w : workers_) n += w->live_delta();
  return n;
}

std::uint64_t Scheduler::counted(Counter c) const noexcept {
  std::uint64_t n = outside_counters_.get(c);
  for (auto& w : workers_) n += w->counters().get(c);
  return n;
}

std::int64_t Scheduler::sample_peak() noexcept {
  const std::int64_t now = live();
  std::int64_t peak = peak_.load(std::memory_order_relaxed);
  while (now > peak && !peak_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
  return std::max(now, peak);
}

std::size_t Scheduler::unfinished_roots() const {
  std::lock_guard lk(roots_mu_);
  std::size_t n = 0;
  for (FiberControl* f = roots_.front(); f != nullptr; f = RootList::next(*f))
    n += f->core().done() ? 0 : 1;
  return n;
}

void Scheduler::shutdown(std::chrono::milliseconds grace) {
  shutting_down_.store(true, std::memory_order_release);
  const FiberId by = current_id();
  const auto start = std::chrono::steady_clock::now();
  bool reported = false;
  for (;;) {
    FiberGroup live_roots;
    {
      std::lock_guard lk(roots_mu_);
      for (FiberControl* f = roots_.front(); f != nullptr; f = RootList::next(*f))
        if (!f->core().done()) live_roots.add(f->core());
    }
    if (live_roots.empty()) break;
    live_roots.interrupt(by);
    // Wait up to the grace period, then report a fiber that does not end
    // (stuck in an uninterruptible region) instead of hanging silently.
    if (!reported) {
      if (FiberCore* r = live_roots.await_masked_until(start + grace)) {
        std::fprintf(stderr,
                     "weft: ~Runtime still waiting after %lld ms for fibers that do not end "
                     "(uninterruptible?); first: fiber %s\n%s",
                     static_cast<long long>(grace.count()),
                     fmt::format("{} '{}'", r->id(), control(*r).name()).c_str(), dump().c_str());
        reported = true;
      }
    }
    live_roots.await_masked();
  }
}

}  // namespace weft::detail
