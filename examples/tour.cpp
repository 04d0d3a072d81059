// The weft tour: the main demo run by ./scripts/demo.sh.
//
// 1. a tree of fibers forked across the workers, awaited, with a summary of
//    which worker thread ran what;
// 2. Exit values: a success, a failure, a typed payload;
// 3. interrupting a blocked fiber: its finalizers run in LIFO order before the
//    interrupter gets the Exit, and the Cause says who interrupted it;
// 4. a mask delaying an interrupt, and a Scope whose first failure stops the rest.
#include <weft/weft.hpp>

#include <fmt/format.h>

#include <atomic>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

// Where leaves ran: OS thread -> count.
struct Placement {
  std::mutex mu;
  std::map<std::thread::id, int> leaves;
  void record() {
    std::lock_guard lk(mu);
    ++leaves[std::this_thread::get_id()];
  }
};

long tree(int depth, long index, Placement& where) {
  if (depth == 0) {
    where.record();
    return index;
  }
  std::vector<weft::Fiber<long>> kids;
  for (long i = 0; i < 10; ++i)
    kids.push_back(weft::fork([=, &where] { return tree(depth - 1, index * 10 + i, where); }));
  long sum = 0;
  for (auto& k : kids) sum += k.join();
  return sum;
}

struct Log {
  std::mutex mu;
  std::vector<std::string> lines;
  void add(std::string s) {
    std::lock_guard lk(mu);
    lines.push_back(std::move(s));
  }
};

struct Connection {  // an RAII resource: its destructor is a finalizer
  Log* log;
  ~Connection() { log->add("  3. ~Connection (RAII destructor)"); }
};

struct ExitCode {  // an early-exit payload that is not a std::exception
  int code;
};

void section(const char* title) { fmt::print("\n== {} ==\n", title); }

}  // namespace

int main() {
  weft::Runtime rt;
  fmt::print("weft tour: {} workers\n", rt.options().workers);

  section("1. a tree of fibers");
  Placement where;
  auto start = std::chrono::steady_clock::now();
  weft::Exit<long> sum = rt.block_on([&] { return tree(4, 0, where); });  // 10,000 leaves
  auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start);
  fmt::print("sum of 10,000 leaves: {} (expected {}), {:.1f} ms\n", sum, 9999L * 10000 / 2,
             ms.count());
  int worker = 0;
  for (auto& [thread, count] : where.leaves)
    fmt::print("  worker thread {} ran {} leaves\n", worker++, count);

  section("2. Exit values");
  fmt::print("success:  {}\n", rt.block_on([] { return 42; }));
  weft::Exit<int> failed = rt.block_on([]() -> int { throw std::runtime_error("disk full"); });
  fmt::print("failure:  {}\n", failed);
  weft::Exit<void> early = rt.block_on([] { throw ExitCode{3}; });
  fmt::print("payload:  failure<ExitCode>()->code = {}\n", early.cause().failure<ExitCode>()->code);

  section("3. interrupting a blocked fiber");
  Log log;
  std::atomic<bool> blocked{false};
  (void)rt.block_on([&] {
    weft::Fiber<void> worker_fiber = weft::fork(
        [&] {
          weft::OnExit close_file([&] { log.add("  4. OnExit: close file (installed first)"); });
          Connection conn{&log};
          weft::OnExit flush([&](const weft::Cause& why) {
            log.add(fmt::format("  2. OnExit: flush, sees cause {}", why));
          });
          weft::OnExit last([&] { log.add("  1. OnExit: installed last, runs first"); });
          log.add("  blocked in sleep_for(1h)");
          blocked = true;
          weft::this_fiber::sleep_for(1h);
        },
        {.name = "blocked-worker"});
    while (!blocked) weft::this_fiber::yield();
    weft::Exit<void> e = worker_fiber.interrupt();
    log.add(fmt::format("  interrupt() returned: {}", e));
    log.add("  cause tree:\n" + e.cause().pretty());
    log.add(fmt::format("  interrupted by {} (the tour's root fiber is {})",
                        e.cause().interruptors().front(), weft::this_fiber::id()));
  });
  for (auto& l : log.lines) fmt::print("{}\n", l);

  section("4. masks and scopes");
  (void)rt.block_on([&] {
    std::atomic<bool> masked{false};
    weft::Fiber<int> careful = weft::fork([&] {
      weft::Uninterruptible mask;  // e.g. a write that must not be torn
      masked = true;
      weft::this_fiber::sleep_for(20ms);
      fmt::print("masked write finished although an interrupt arrived during it\n");
      return 1;
    });
    while (!masked) weft::this_fiber::yield();
    fmt::print("interrupting the masked fiber: {}\n", careful.interrupt());

    try {
      weft::Scope scope;
      for (int i = 0; i < 3; ++i)
        scope.fork([i] {
          weft::OnExit bye([i] { fmt::print("  scope child {} stopped\n", i); });
          weft::this_fiber::sleep_for(1h);
        });
      scope.fork([] {
        weft::this_fiber::sleep_for(5ms);
        throw std::runtime_error("one child failed");
      });
      scope.join();
    } catch (const std::exception& e) {
      fmt::print("scope.join() rethrew: {}\n", e.what());
    }
  });
  return sum.ok() && sum.value() == 9999L * 10000 / 2 ? 0 : 1;
}
