// Micro-benchmarks of the per-worker timer heap (src/timer/timer_heap.hpp),
// with a std::set of (deadline, seq) -- the usual ordered-tree timer queue --
// as the reference a ratio is taken against.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "timer/timer_heap.hpp"

namespace {

using weft::detail::Clock;
using weft::detail::TimerEntry;
using weft::detail::TimerHeap;

const Clock::time_point kT0 = Clock::time_point(std::chrono::hours(1000));

void no_op_fire(TimerEntry*) {}

// Random deadlines in [t0, t0 + 1 s), pre-drawn so the RNG is not timed.
std::vector<Clock::time_point> random_deadlines(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::int64_t> dist(0, 1'000'000'000);
  std::vector<Clock::time_point> out(n);
  for (auto& d : out) d = kT0 + std::chrono::nanoseconds(dist(rng));
  return out;
}

std::vector<TimerEntry> make_entries(const std::vector<Clock::time_point>& deadlines) {
  std::vector<TimerEntry> entries(deadlines.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    entries[i].deadline = deadlines[i];
    entries[i].fire = &no_op_fire;
  }
  return entries;
}

// insert + cancel of one timer (a sleep or timeout that ends early) with
// range(0) other timers pending: the common path of every timeout.
void BM_TimerInsertCancel(benchmark::State& state) {
  const auto background_n = static_cast<std::size_t>(state.range(0));
  auto background = make_entries(random_deadlines(background_n, 1));
  const auto deadlines = random_deadlines(4096, 2);
  TimerHeap heap;
  for (auto& e : background) heap.insert(&e);
  TimerEntry e;
  e.fire = &no_op_fire;
  std::size_t i = 0;
  for (auto _ : state) {
    e.deadline = deadlines[i++ & 4095];
    heap.insert(&e);
    benchmark::DoNotOptimize(heap.cancel(&e));
  }
  state.SetItemsProcessed(state.iterations());
  for (auto& b : background) heap.cancel(&b);
}
BENCHMARK(BM_TimerInsertCancel)->Arg(0)->Arg(1000)->Arg(100'000);

// Reference: the same insert + erase on a std::set keyed by (deadline, seq).
void BM_StdSetInsertErase(benchmark::State& state) {
  const auto background_n = static_cast<std::size_t>(state.range(0));
  const auto background = random_deadlines(background_n, 1);
  const auto deadlines = random_deadlines(4096, 2);
  std::set<std::pair<std::int64_t, std::uint64_t>> set;
  std::uint64_t seq = 0;
  for (auto d : background) set.emplace(d.time_since_epoch().count(), seq++);
  std::size_t i = 0;
  for (auto _ : state) {
    auto it = set.emplace(deadlines[i++ & 4095].time_since_epoch().count(), seq++).first;
    set.erase(it);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_StdSetInsertErase)->Arg(0)->Arg(1000)->Arg(100'000);

// fire_expired over range(0) due timers (random deadlines); the inserts are
// done with the timer paused. Items = timers fired.
void BM_TimerFireExpired(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto entries = make_entries(random_deadlines(n, 3));
  TimerHeap heap;
  const Clock::time_point now = kT0 + std::chrono::seconds(2);
  for (auto _ : state) {
    state.PauseTiming();
    for (auto& e : entries) heap.insert(&e);
    state.ResumeTiming();
    benchmark::DoNotOptimize(heap.fire_expired(now));
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}
BENCHMARK(BM_TimerFireExpired)->Arg(1024)->Arg(100'000);

// Insert of range(0) timers into an empty heap (capacity kept from the last
// round), then fire them all: the full life of a batch of sleeps.
void BM_TimerInsertThenFire(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto entries = make_entries(random_deadlines(n, 4));
  TimerHeap heap;
  const Clock::time_point now = kT0 + std::chrono::seconds(2);
  for (auto _ : state) {
    for (auto& e : entries) heap.insert(&e);
    benchmark::DoNotOptimize(heap.fire_expired(now));
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}
BENCHMARK(BM_TimerInsertThenFire)->Arg(1024)->Arg(100'000);

// fire_expired when nothing is due, with 1000 timers pending: the check a
// worker makes on every scheduling round (lock-free early out).
void BM_TimerFireExpiredNothingDue(benchmark::State& state) {
  auto entries = make_entries(random_deadlines(1000, 5));
  TimerHeap heap;
  for (auto& e : entries) heap.insert(&e);
  for (auto _ : state) benchmark::DoNotOptimize(heap.fire_expired(kT0));
  for (auto& e : entries) heap.cancel(&e);
}
BENCHMARK(BM_TimerFireExpiredNothingDue);

// next_deadline(): what an idle worker reads to decide how long to sleep.
void BM_TimerNextDeadline(benchmark::State& state) {
  auto entries = make_entries(random_deadlines(1000, 6));
  TimerHeap heap;
  for (auto& e : entries) heap.insert(&e);
  for (auto _ : state) benchmark::DoNotOptimize(heap.next_deadline());
  for (auto& e : entries) heap.cancel(&e);
}
BENCHMARK(BM_TimerNextDeadline);

// cancel() of a timer that already fired: what a fiber woken by its own
// timer does before its TimerEntry goes out of scope.
void BM_TimerCancelAfterFire(benchmark::State& state) {
  TimerHeap heap;
  TimerEntry e;
  for (auto _ : state) benchmark::DoNotOptimize(heap.cancel(&e));
}
BENCHMARK(BM_TimerCancelAfterFire);

}  // namespace
