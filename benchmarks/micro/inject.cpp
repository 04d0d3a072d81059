// Micro-benchmarks of the scheduler's injection queue
// (src/scheduler/inject_queue.hpp) from several threads at once, against the
// structure it replaced (a std::mutex around a std::deque, as
// Scheduler::inject had until issue 15) as the "before".
//
// Each benchmark thread pushes one item and pops one (anyone's): producers
// and consumers contend on the queue as plain threads waking fibers and
// workers taking them do. Threads(1) is the uncontended cost of a push+pop.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <deque>
#include <mutex>

#include "scheduler/inject_queue.hpp"

namespace {

struct Task {
  std::uint64_t id = 0;
};

// The old Scheduler::inject/pop_injected: a mutex, a deque, a size counter.
class MutexDequeQueue {
 public:
  void push(Task* t) {
    std::lock_guard lk(mu_);
    q_.push_back(t);
  }
  Task* try_pop() {
    std::lock_guard lk(mu_);
    if (q_.empty()) return nullptr;
    Task* t = q_.front();
    q_.pop_front();
    return t;
  }

 private:
  std::mutex mu_;
  std::deque<Task*> q_;
};

MutexDequeQueue g_mutex_queue;
weft::detail::InjectQueue<Task> g_ring_queue;

template <class Q>
void push_pop(benchmark::State& state, Q& q) {
  Task t;
  for (auto _ : state) {
    q.push(&t);
    Task* got = nullptr;
    // Another thread may have taken ours; there is then one for us to take
    // (every thread pushes before it pops), possibly not yet published.
    while ((got = q.try_pop()) == nullptr) {
    }
    benchmark::DoNotOptimize(got);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_InjectMutexDeque(benchmark::State& state) { push_pop(state, g_mutex_queue); }
BENCHMARK(BM_InjectMutexDeque)->Threads(1)->Threads(2)->Threads(4)->UseRealTime();

void BM_InjectRing(benchmark::State& state) { push_pop(state, g_ring_queue); }
BENCHMARK(BM_InjectRing)->Threads(1)->Threads(2)->Threads(4)->UseRealTime();

// Bursts: each thread pushes 64, then pops 64 (a plain thread waking many
// fibers while workers drain them).
template <class Q>
void burst(benchmark::State& state, Q& q) {
  constexpr int kBurst = 64;
  Task t[kBurst];
  for (auto _ : state) {
    for (auto& x : t) q.push(&x);
    for (int i = 0; i < kBurst; ++i) {
      Task* got = nullptr;
      while ((got = q.try_pop()) == nullptr) {
      }
      benchmark::DoNotOptimize(got);
    }
  }
  state.SetItemsProcessed(state.iterations() * kBurst);
}

void BM_InjectMutexDequeBurst(benchmark::State& state) { burst(state, g_mutex_queue); }
BENCHMARK(BM_InjectMutexDequeBurst)->Threads(1)->Threads(2)->Threads(4)->UseRealTime();

void BM_InjectRingBurst(benchmark::State& state) { burst(state, g_ring_queue); }
BENCHMARK(BM_InjectRingBurst)->Threads(1)->Threads(2)->Threads(4)->UseRealTime();

}  // namespace
