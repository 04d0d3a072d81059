// The program tests/test_gdb.cpp runs under gdb: a runtime whose root fiber
// ("gdb-main") forks "sleeper", parked in this_fiber::sleep_for inside
// weft_gdb_sleeper_body(), and "waiter", parked on a Deferred inside
// weft_gdb_waiter_body(). Once both are parked the root calls
// weft_gdb_stop_here(), where the test's gdb has a breakpoint; the root is
// then the running fiber. Run alone, it just ends both fibers and exits 0.
//
// It prints the fiber ids first ("weft-gdb-ids main=1 sleeper=2 waiter=3"),
// so the test knows which numbers gdb should show.
#include <weft/weft.hpp>

#include "fiber/fiber_control.hpp"  // run_state(), to wait until both are parked

#include <chrono>
#include <cstdio>
#include <stdexcept>

// Not static, never inlined: the test looks for these names in weft-bt's
// backtraces and sets a breakpoint on the last one.
[[gnu::noinline]] void weft_gdb_sleeper_body() {
  weft::this_fiber::sleep_for(std::chrono::hours(24));  // ended by an interrupt
}

[[gnu::noinline]] int weft_gdb_waiter_body(weft::Deferred<int>& gate) { return gate.await(); }

[[gnu::noinline]] void weft_gdb_stop_here() { asm volatile("" ::: "memory"); }

// The sleeper's id, for the test's gdb: `eval "weft-bt %d", weft_gdb_sleeper_id`.
volatile unsigned long long weft_gdb_sleeper_id = 0;

namespace {

template <class T>
bool parked(const weft::Fiber<T>& f) {
  return weft::detail::control(weft::detail::core_of(f)).run_state() ==
         weft::detail::RunState::parked;
}

}  // namespace

int main() {
  weft::Runtime runtime({.workers = 2});
  weft::Exit<void> e = runtime.block_on(
      [] {
        weft::Deferred<int> gate;
        weft::Fiber<void> sleeper = weft::fork(weft_gdb_sleeper_body, {.name = "sleeper"});
        weft::Fiber<int> waiter =
            weft::fork([&gate] { return weft_gdb_waiter_body(gate); }, {.name = "waiter"});
        while (!parked(sleeper) || !parked(waiter)) weft::this_fiber::yield();
        std::printf("weft-gdb-ids main=%llu sleeper=%llu waiter=%llu\n",
                    static_cast<unsigned long long>(weft::this_fiber::id().value()),
                    static_cast<unsigned long long>(sleeper.id().value()),
                    static_cast<unsigned long long>(waiter.id().value()));
        std::fflush(stdout);
        weft_gdb_sleeper_id = sleeper.id().value();
        weft_gdb_stop_here();
        gate.succeed(7);
        (void)sleeper.interrupt();
        if (waiter.await().value() != 7) throw std::runtime_error("waiter: wrong value");
      },
      {.name = "gdb-main"});
  return e.ok() ? 0 : 1;
}
