// Micro-benchmarks of the Chase-Lev deque (src/scheduler/chase_lev_deque.hpp),
// with a mutex-protected std::deque as the reference a ratio is taken against.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "scheduler/chase_lev_deque.hpp"

namespace {

using weft::detail::ChaseLevDeque;

struct Task {
  std::uint64_t id = 0;
};

// Owner push then pop of the same item: the fast path of a worker that forks
// and immediately runs the child (no growth; the seq_cst fence in pop).
void BM_DequePushPop(benchmark::State& state) {
  ChaseLevDeque<Task> dq;
  Task t;
  for (auto _ : state) {
    dq.push(&t);
    benchmark::DoNotOptimize(dq.pop());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DequePushPop);

// Owner pushes a batch, then pops it all (LIFO), as after a burst of forks.
void BM_DequePushPopBatch(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  ChaseLevDeque<Task> dq;
  std::vector<Task> tasks(batch);
  for (auto _ : state) {
    for (auto& t : tasks) dq.push(&t);
    for (std::size_t i = 0; i < batch; ++i) benchmark::DoNotOptimize(dq.pop());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
}
BENCHMARK(BM_DequePushPopBatch)->Arg(64)->Arg(4096);

// Uncontended steal (push by the owner, steal by the same thread): the cost
// of the thief's path itself (fence + CAS), without cache-line transfers.
void BM_DequeSteal(benchmark::State& state) {
  ChaseLevDeque<Task> dq;
  Task t;
  for (auto _ : state) {
    dq.push(&t);
    benchmark::DoNotOptimize(dq.steal());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DequeSteal);

// Contended: thread 0 is the owner (push one per iteration, pop when more
// than kBacklog are waiting), the others steal in a loop. Per-thread time per
// iteration; "popped" and "stolen" show how the pushed items were shared out.
ChaseLevDeque<Task>* g_shared = nullptr;
constexpr std::size_t kBacklog = 32;

void BM_DequeContended(benchmark::State& state) {
  if (state.thread_index() == 0) g_shared = new ChaseLevDeque<Task>();
  // Threads start the timed loop together (benchmark's start barrier), after
  // thread 0's setup above.
  Task t;
  std::int64_t got = 0;
  if (state.thread_index() == 0) {
    for (auto _ : state) {
      g_shared->push(&t);
      // Keep about kBacklog items for the thieves; pop only the excess.
      if (g_shared->size_approx() > kBacklog) got += g_shared->pop() != nullptr;
    }
  } else {
    for (auto _ : state) got += g_shared->steal() != nullptr;
  }
  // Counters are summed over the threads: how the items were shared out.
  state.counters[state.thread_index() == 0 ? "popped" : "stolen"] = static_cast<double>(got);
  // Every thread has left the loop here (stop barrier); drain and free.
  if (state.thread_index() == 0) {
    while (g_shared->pop() != nullptr) {
    }
    delete g_shared;
    g_shared = nullptr;
  }
}
BENCHMARK(BM_DequeContended)->Threads(2)->Threads(3)->UseRealTime();

// A thief taking 32 of a victim's 64 items (uncontended, one thread):
// one at a time with steal(), each pushed to the thief's own deque as a
// batch thief would keep it, vs one steal_half() visit. Per item moved. The
// CASes are the same (steal_half is a loop of steal()); the difference is
// the loop around them, so the gain in the scheduler is in the victim
// search and the trips through the worker loop that a batch saves.
void BM_DequeStealOneByOne(benchmark::State& state) {
  ChaseLevDeque<Task> victim;
  ChaseLevDeque<Task> thief;
  std::vector<Task> tasks(64);
  for (auto _ : state) {
    for (auto& t : tasks) victim.push(&t);
    for (int i = 0; i < 32; ++i) thief.push(victim.steal());
    while (thief.pop() != nullptr) {
    }
    while (victim.pop() != nullptr) {
    }
  }
  state.SetItemsProcessed(state.iterations() * 32);
}
BENCHMARK(BM_DequeStealOneByOne);

void BM_DequeStealHalf(benchmark::State& state) {
  ChaseLevDeque<Task> victim;
  ChaseLevDeque<Task> thief;
  std::vector<Task> tasks(64);
  for (auto _ : state) {
    for (auto& t : tasks) victim.push(&t);
    thief.push(victim.steal_half(thief, 32));
    while (thief.pop() != nullptr) {
    }
    while (victim.pop() != nullptr) {
    }
  }
  state.SetItemsProcessed(state.iterations() * 32);
}
BENCHMARK(BM_DequeStealHalf);

// Reference: std::deque under a std::mutex, push_back + pop_back.
void BM_MutexDequePushPop(benchmark::State& state) {
  std::mutex mu;
  std::deque<Task*> dq;
  Task t;
  for (auto _ : state) {
    {
      std::lock_guard lk(mu);
      dq.push_back(&t);
    }
    std::lock_guard lk(mu);
    benchmark::DoNotOptimize(dq.back());
    dq.pop_back();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MutexDequePushPop);

}  // namespace
