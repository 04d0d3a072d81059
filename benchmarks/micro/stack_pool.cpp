// Micro-benchmarks of StackPool (src/context/stack.hpp): acquire + release
// through a worker's cache (the fiber spawn/exit path), through the shared
// list, and in bursts that spill to and refill from the shared list.
#include <benchmark/benchmark.h>

#include <vector>

#include "context/stack.hpp"

namespace weft::detail {
namespace {

// One acquire + release on the caller's worker cache: no lock, no syscall.
void BM_stack_acquire_release_worker_cache(benchmark::State& state) {
  StackPool pool(StackPoolOptions{});
  for (auto _ : state) {
    Stack s = pool.acquire(0);
    benchmark::DoNotOptimize(s.base);
    pool.release(0, s);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_stack_acquire_release_worker_cache);

// Through the mutex-protected shared list (kNoWorker).
void BM_stack_acquire_release_shared(benchmark::State& state) {
  StackPool pool(StackPoolOptions{});
  for (auto _ : state) {
    Stack s = pool.acquire(StackPool::kNoWorker);
    benchmark::DoNotOptimize(s.base);
    pool.release(StackPool::kNoWorker, s);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_stack_acquire_release_shared);

// Bursts of n stacks: beyond the cache (64) they spill to the shared list and
// come back in batches. Reported per stack.
void BM_stack_acquire_release_burst(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  StackPool pool(StackPoolOptions{});
  std::vector<Stack> held;
  held.reserve(n);
  for (auto _ : state) {
    for (std::size_t i = 0; i < n; ++i) held.push_back(pool.acquire(0));
    for (const Stack& s : held) pool.release(0, s);
    held.clear();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}
BENCHMARK(BM_stack_acquire_release_burst)->Arg(32)->Arg(256)->Arg(4096);

// Two workers at once, each on its own cache (no shared cache lines).
StackPool& shared_pool() {
  static StackPool pool(StackPoolOptions{.workers = 2});
  return pool;
}

void BM_stack_acquire_release_two_workers(benchmark::State& state) {
  const auto worker = static_cast<unsigned>(state.thread_index());
  StackPool& pool = shared_pool();
  for (auto _ : state) {
    Stack s = pool.acquire(worker);
    benchmark::DoNotOptimize(s.base);
    pool.release(worker, s);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_stack_acquire_release_two_workers)->Threads(2);

}  // namespace
}  // namespace weft::detail
