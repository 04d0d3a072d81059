// Micro-benchmarks of the control-block pool (src/context/block_pool.hpp):
// one allocate + free of a fiber-sized block through the thread's cache,
// against the global allocator it replaces; bursts beyond the cache bound;
// and the whole control block (make_fiber's `new` + the last release) of a
// fiber that never runs.
#include <benchmark/benchmark.h>

#include <new>
#include <vector>

#include "context/block_pool.hpp"
#include "fiber/fiber_control.hpp"

namespace weft::detail {
namespace {

// The size of FiberTask<void, small lambda> (issue 15: 352 bytes).
constexpr std::size_t kBlock = 352;

void BM_control_block_pool(benchmark::State& state) {
  for (auto _ : state) {
    void* p = block_allocate(kBlock);
    benchmark::DoNotOptimize(p);
    block_free(p, kBlock);
  }
  state.SetItemsProcessed(state.iterations());
  // The sizes this pool serves (reported with the result).
  auto small = [] {};
  state.counters["sizeof_FiberControl"] = static_cast<double>(sizeof(FiberControl));
  state.counters["sizeof_FiberTask_void"] =
      static_cast<double>(sizeof(FiberTask<void, decltype(small)>));
}
BENCHMARK(BM_control_block_pool);

void BM_control_block_operator_new(benchmark::State& state) {
  for (auto _ : state) {
    void* p = ::operator new(kBlock);
    benchmark::DoNotOptimize(p);
    ::operator delete(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_control_block_operator_new);

// Bursts of n blocks (spawn_batch's shape): beyond the bound (64 per class)
// the surplus goes to the global allocator. Reported per block.
void BM_control_block_pool_burst(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  std::vector<void*> held;
  held.reserve(n);
  for (auto _ : state) {
    for (std::size_t i = 0; i < n; ++i) held.push_back(block_allocate(kBlock));
    for (void* p : held) block_free(p, kBlock);
    held.clear();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}
BENCHMARK(BM_control_block_pool_burst)->Arg(32)->Arg(256)->Arg(4096);

void BM_control_block_operator_new_burst(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  std::vector<void*> held;
  held.reserve(n);
  for (auto _ : state) {
    for (std::size_t i = 0; i < n; ++i) held.push_back(::operator new(kBlock));
    for (void* p : held) ::operator delete(p);
    held.clear();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}
BENCHMARK(BM_control_block_operator_new_burst)->Arg(32)->Arg(256)->Arg(4096);

}  // namespace
}  // namespace weft::detail
