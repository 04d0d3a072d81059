// The program tests/test_gdb.cpp runs under gdb. Its root fiber "gdb-main"
// forks
//   "sleeper", parked in this_fiber::sleep_for inside weft_gdb_sleeper_body();
//   "waiter", parked on a Deferred inside weft_gdb_waiter_body(), which first
//     forks "shielded" (uninterruptible, parked on the same Deferred) and
//     interrupts it: the request stays pending behind the mask;
//   "locker", parked in Mutex::lock on a Mutex the root holds.
// Once all four are parked the root calls weft_gdb_stop_here(), where the
// test's gdb has a breakpoint; the root is then the running fiber. Run alone,
// the program ends them all and exits 0.
//
// It prints the fiber ids first ("weft-gdb-ids main=1 sleeper=2 waiter=3
// shielded=5 locker=4"), so the test knows which numbers gdb should show.
#include <weft/weft.hpp>

#include "fiber/fiber_control.hpp"  // run_state(), to wait until they are parked

#include <chrono>
#include <cstdio>
#include <stdexcept>

namespace {

template <class T>
bool parked(const weft::Fiber<T>& f) {
  return weft::detail::control(weft::detail::core_of(f)).run_state() ==
         weft::detail::RunState::parked;
}

}  // namespace

// Not static, never inlined: the test looks for these names in weft-bt's
// backtraces and sets a breakpoint on weft_gdb_stop_here.
// A day in sleep_for's own type: no chrono conversion is inlined at the call,
// so even at -O1 gdb gives the call's return address this file's line.
constexpr std::chrono::nanoseconds kDay = std::chrono::hours(24);

[[gnu::noinline]] void weft_gdb_sleeper_body() {
  weft::this_fiber::sleep_for(kDay);  // ended by an interrupt
}

[[gnu::noinline]] int weft_gdb_shielded_body(weft::Deferred<int>& gate) { return gate.await(); }

[[gnu::noinline]] int weft_gdb_waiter_body(weft::Deferred<int>& gate,
                                           weft::Deferred<weft::FiberId>& shielded_id) {
  weft::Fiber<int> shielded = weft::fork([&gate] { return weft_gdb_shielded_body(gate); },
                                         {.name = "shielded", .uninterruptible = true});
  while (!parked(shielded)) weft::this_fiber::yield();
  shielded.interrupt_fork();  // pending: it waits masked
  shielded_id.succeed(shielded.id());
  const int value = gate.await();
  (void)shielded.await();  // it ends with the gate's value or interrupted; either will do
  return value;
}

[[gnu::noinline]] void weft_gdb_locker_body(weft::Mutex& mutex) {
  mutex.lock();  // held by the root until after the breakpoint
  mutex.unlock();
}

[[gnu::noinline]] void weft_gdb_stop_here() { asm volatile("" ::: "memory"); }

// The sleeper's id, for the test's gdb: `eval "weft-bt %d", weft_gdb_sleeper_id`.
volatile unsigned long long weft_gdb_sleeper_id = 0;

int main() {
  weft::RuntimeOptions options;
  options.workers = 2;
  weft::Runtime runtime(options);
  weft::Exit<void> e = runtime.block_on(
      [] {
        weft::Deferred<int> gate;
        weft::Deferred<weft::FiberId> shielded_id;
        weft::Fiber<void> sleeper = weft::fork(weft_gdb_sleeper_body, {.name = "sleeper"});
        weft::Fiber<int> waiter =
            weft::fork([&] { return weft_gdb_waiter_body(gate, shielded_id); }, {.name = "waiter"});
        weft::Mutex mutex;
        mutex.lock();
        weft::Fiber<void> locker =
            weft::fork([&mutex] { weft_gdb_locker_body(mutex); }, {.name = "locker"});
        const weft::FiberId shielded = shielded_id.await();
        while (!parked(sleeper) || !parked(waiter) || !parked(locker)) weft::this_fiber::yield();
        std::printf("weft-gdb-ids main=%llu sleeper=%llu waiter=%llu shielded=%llu locker=%llu\n",
                    static_cast<unsigned long long>(weft::this_fiber::id().value()),
                    static_cast<unsigned long long>(sleeper.id().value()),
                    static_cast<unsigned long long>(waiter.id().value()),
                    static_cast<unsigned long long>(shielded.value()),
                    static_cast<unsigned long long>(locker.id().value()));
        std::fflush(stdout);
        weft_gdb_sleeper_id = sleeper.id().value();
        weft_gdb_stop_here();
        mutex.unlock();
        (void)locker.await();
        gate.succeed(7);
        (void)sleeper.interrupt();
        if (waiter.await().value() != 7) throw std::runtime_error("waiter: wrong value");
      },
      {.name = "gdb-main"});
  return e.ok() ? 0 : 1;
}
