// Micro-benchmarks of the raw context switch (src/context/context.hpp):
// a round trip thread context -> fiber -> thread context, bare and with what
// the scheduler adds around it, against Boost.Context's bare jump_fcontext,
// and a whole fiber lifecycle (stack, make, run, exit, release).
#include <benchmark/benchmark.h>
#include <boost/context/detail/fcontext.hpp>

#include "context/context.hpp"
#include "context/stack.hpp"

namespace weft::detail {
namespace {

namespace bctx = boost::context::detail;

struct PingPong {
  ExecutionContext thread_ctx;
  ExecutionContext fiber_ctx;
  bool stop = false;
};

void pong_entry(void* arg) {
  auto* p = static_cast<PingPong*>(arg);
  while (!p->stop) context_switch(p->fiber_ctx, p->thread_ctx);
  context_exit(p->fiber_ctx, p->thread_ctx);
}

// Runs `body(PingPong&)` per iteration with a live pong fiber.
template <class Body>
void with_pong_fiber(benchmark::State& state, Body body) {
  StackPool pool(StackPoolOptions{.stack_size = 64 * 1024});
  Stack stack = pool.acquire(0);
  PingPong p;
  context_init_thread(p.thread_ctx);
  context_make(p.fiber_ctx, stack, &pong_entry, &p);
  for (auto _ : state) body(p, stack);
  p.stop = true;
  context_switch(p.thread_ctx, p.fiber_ctx);  // the fiber exits
  context_destroy(p.fiber_ctx);
  pool.release(0, stack);
  state.SetItemsProcessed(state.iterations());
}

// Two context_switch calls: thread -> fiber -> thread.
void BM_context_switch_round_trip(benchmark::State& state) {
  with_pong_fiber(state,
                  [](PingPong& p, const Stack&) { context_switch(p.thread_ctx, p.fiber_ctx); });
}
BENCHMARK(BM_context_switch_round_trip);

// What a worker does around each resume: running-fiber record and canary check.
void BM_context_switch_round_trip_as_scheduled(benchmark::State& state) {
  with_pong_fiber(state, [](PingPong& p, const Stack& stack) {
    RunningFiberInfo info{&stack, 1, "bench"};
    set_running_fiber(&info);
    context_switch(p.thread_ctx, p.fiber_ctx);
    set_running_fiber(nullptr);
    if (!stack_canary_intact(stack)) report_canary_overflow(1, "bench", stack.size);
  });
}
BENCHMARK(BM_context_switch_round_trip_as_scheduled);

// Baseline: Boost.Context alone (no exception globals, no hop, no annotations).
void raw_pong(bctx::transfer_t t) {
  for (;;) t = bctx::jump_fcontext(t.fctx, nullptr);
}

void BM_raw_jump_fcontext_round_trip(benchmark::State& state) {
  StackPool pool(StackPoolOptions{.stack_size = 64 * 1024});
  Stack stack = pool.acquire(0);
  bctx::fcontext_t fiber = bctx::make_fcontext(stack.top(), stack.size, &raw_pong);
  for (auto _ : state) fiber = bctx::jump_fcontext(fiber, nullptr).fctx;
  pool.release(0, stack);  // the raw fiber is abandoned mid-loop, as its stack
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_raw_jump_fcontext_round_trip);

// A whole short fiber: acquire a stack, make, run to the end, destroy, release.
struct OneShot {
  ExecutionContext thread_ctx;
  ExecutionContext fiber_ctx;
  int runs = 0;
};

void one_shot_entry(void* arg) {
  auto* o = static_cast<OneShot*>(arg);
  ++o->runs;
  context_exit(o->fiber_ctx, o->thread_ctx);
}

void BM_fiber_lifecycle(benchmark::State& state) {
  StackPool pool(StackPoolOptions{.stack_size = 64 * 1024});
  OneShot o;
  context_init_thread(o.thread_ctx);
  for (auto _ : state) {
    Stack stack = pool.acquire(0);
    context_make(o.fiber_ctx, stack, &one_shot_entry, &o);
    context_switch(o.thread_ctx, o.fiber_ctx);
    context_destroy(o.fiber_ctx);
    pool.release(0, stack);
  }
  benchmark::DoNotOptimize(o.runs);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_fiber_lifecycle);

}  // namespace
}  // namespace weft::detail
