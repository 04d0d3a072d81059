// interrupt_blocked: 100,000 rounds of: fork a fiber that installs a finalizer
// (OnExit: counter++) and blocks forever (awaits a Deferred nobody completes);
// once it has started, interrupt() it -- which returns after the fiber has
// fully ended, finalizer included. Checks counter == rounds and that every
// Exit is "interrupted".
//
// "Once it has started": weft's fork never switches, and a fiber interrupted
// before its body starts never runs it (DESIGN 3.2), so the parent yields
// until the child has installed its finalizer (one yield in the common case:
// the child sits in the worker's LIFO slot). Go and Tokio pay the same start.
// Prints: BENCH interrupt_blocked <ns per round> ns/op
#include "common.hpp"

#include <weft/deferred.hpp>

int main(int argc, char** argv) {
  using namespace weft::bench;
  const Args a = parse_args(argc, argv, "interrupt_blocked");
  const std::uint64_t rounds = a.quick ? 5'000 : 100'000;
  weft::Runtime rt(runtime_options(a));
  Watchdog dog(a, &rt);
  double ns = 0;
  run_root(a, rt, [&] {
    weft::Deferred<void> never;  // never completed: "blocks forever"
    std::atomic<std::uint64_t> counter{0};
    ns = median_ns([&] {
      counter.store(0, std::memory_order_relaxed);
      for (std::uint64_t i = 0; i < rounds; ++i) {
        std::atomic<bool> started{false};
        auto f = weft::fork([&] {
          weft::OnExit finalizer{[&] { counter.fetch_add(1, std::memory_order_relaxed); }};
          started.store(true, std::memory_order_release);
          never.await();
        });
        while (!started.load(std::memory_order_acquire)) weft::this_fiber::yield();
        const bool interrupted = f.interrupt().interrupted();
        WEFT_BENCH_CHECK(a, interrupted,
                         "round " + std::to_string(i) + ": Exit is not interrupted");
      }
      WEFT_BENCH_CHECK(a, counter.load() == rounds,
                       "finalizers ran " + std::to_string(counter.load()) + " times, not " +
                           std::to_string(rounds));
    });
  });
  print("interrupt_blocked", ns / static_cast<double>(rounds), "ns/op");
  return 0;
}
