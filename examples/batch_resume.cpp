// Step-wise work with stop points: run_steps processes a batch one item at a
// time, each item uninterruptibly. When an interrupt arrives, the item under
// way finishes, the run stops and reports what was and was not processed;
// the rest is resumed later.
#include <weft/weft.hpp>

#include <cstdio>
#include <string>
#include <vector>

namespace {

std::string list(const std::vector<std::size_t>& indices, const std::vector<std::string>& items) {
  std::string s;
  for (std::size_t i : indices) s += " " + items[i];
  return s.empty() ? " -" : s;
}

}  // namespace

int main() {
  weft::Runtime runtime({.workers = 2});
  weft::Exit<void> e = runtime.block_on([] {
    std::vector<std::string> invoices{"inv-1", "inv-2", "inv-3", "inv-4", "inv-5", "inv-6"};
    auto charge = [](const std::string& invoice) {
      if (invoice == "inv-3") {
        // A shutdown request arrives while inv-3 is being charged (here the
        // step asks for it itself; usually a supervisor or a signal does).
        weft::interrupt();  // inside the step's mask: recorded, not thrown
        std::printf("  shutdown requested while charging %s\n", invoice.c_str());
      }
      weft::this_fiber::sleep_for(std::chrono::milliseconds(5));  // never cut short
      std::printf("  charged %s\n", invoice.c_str());
    };

    std::printf("first run:\n");
    weft::StepsOutcome<void> first;
    weft::Fiber<void> batch = weft::fork([&] { first = weft::run_steps(invoices, charge); });
    weft::Exit<void> batch_exit = batch.await();
    std::printf("  batch fiber ended %s\n", batch_exit.interrupted() ? "interrupted" : "normally");
    std::printf("  processed:%s\n", list(first.processed, invoices).c_str());
    std::printf("  not processed:%s\n", list(first.not_processed, invoices).c_str());

    std::printf("resuming:\n");
    std::vector<std::string> rest;
    for (std::size_t i : first.not_processed) rest.push_back(invoices[i]);
    weft::StepsOutcome<void> second = weft::run_steps(rest, charge);
    std::printf("  processed %zu more, %s\n", second.processed.size(),
                second.exit.ok() ? "batch complete" : "batch incomplete");
  });
  return e.ok() ? 0 : 1;
}
