// A hung program and its dump: two fibers take two Mutexes in opposite
// orders (an AB/BA deadlock) while a hundred request fibers wait on a
// channel. Runtime::dump() names the line each fiber waits at and which
// fiber holds each Mutex; the hundred waiters collapse into one line. Then a
// supervisor breaks the deadlock by interrupting one side, whose lock_guard
// releases its Mutex as it unwinds. (docs/debugging.md, "Reading a dump".)
#include <weft/weft.hpp>

#include <cstdio>
#include <mutex>
#include <string>

namespace {

void transfer(weft::Mutex& from, weft::Mutex& to, weft::Latch& both_locked) {
  std::lock_guard first(from);
  both_locked.arrive_and_wait();
  std::lock_guard second(to);  // waits forever: the other fiber holds `to`
}

}  // namespace

int main() {
  weft::RuntimeOptions options;
  options.workers = 2;
  weft::Runtime rt(options);
  weft::Exit<void> e = rt.block_on([&] {
    weft::Mutex accounts;
    weft::Mutex audit_log;
    weft::Latch both_locked(2);
    weft::Channel<std::string> requests(16);
    weft::Scope handlers;
    for (int i = 0; i < 100; ++i) handlers.fork([&] { (void)requests.receive(); }, {"handler"});
    auto debit = weft::fork([&] { transfer(accounts, audit_log, both_locked); }, {"debit"});
    auto audit = weft::fork([&] { transfer(audit_log, accounts, both_locked); }, {"audit"});
    // Wait until both are stuck (a real program would get here by hanging;
    // SIGUSR1 with RuntimeOptions::dump_signal prints the same).
    while (accounts.waiters() + audit_log.waiters() < 2 || requests.waiters() < 100)
      weft::this_fiber::yield();
    std::fputs(rt.dump().c_str(), stdout);
    std::puts("-- interrupting 'audit' breaks the deadlock");
    (void)audit.interrupt();
    debit.join();
    requests.close();
    handlers.join();
  });
  std::printf("-- done: %s\n", e.ok() ? "ok" : "failed");
  return e.ok() ? 0 : 1;
}
