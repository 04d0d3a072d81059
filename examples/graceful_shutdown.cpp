// Graceful shutdown with Runtime::block_on_main: SIGINT (Ctrl-C) or SIGTERM
// interrupts the main fiber; the job under way finishes (it runs masked),
// finalizers flush and close, and the process exits 130 (SIGINT) or 143
// (SIGTERM). A second Ctrl-C during the clean-up is reported and ignored.
//
//   graceful_shutdown          self-test (what ctest runs): raises SIGINT at
//                              itself after ~100 ms of work, checks that the
//                              status is 130 and that every finalizer ran,
//                              and exits 0 (1 if not)
//   graceful_shutdown --wait   serves until you press Ctrl-C or send SIGTERM,
//                              and exits with block_on_main's status
#include <weft/weft.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <string>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
  const bool self_test = argc < 2 || std::string(argv[1]) != "--wait";
  std::atomic<int> finalizers{0};
  int status = 0;
  {
    weft::Runtime runtime({.workers = 2});
    status = runtime.block_on_main([&] {
      weft::OnExit close_listener([&] {
        std::printf("main: listener closed\n");
        ++finalizers;
      });
      weft::Fiber<void> worker = weft::fork([&] {
        weft::OnExit flush([&] {
          weft::this_fiber::sleep_for(20ms);  // finalizers may take their time
          std::printf("worker: job finished, log flushed\n");
          ++finalizers;
        });
        for (;;) {
          // The stop point between jobs: without it the loop would go from
          // one masked job to the next and never see the interrupt.
          weft::this_fiber::check_interrupt();
          weft::Uninterruptible one_job;  // a job is never left half done
          weft::this_fiber::sleep_for(10ms);
        }
      });
      // Declared after the worker, so it runs first: stop the worker, then close.
      weft::OnExit stop_worker([&] { (void)worker.interrupt(); });  // waits for it to end
      if (self_test) {
        weft::fork([] {
          weft::this_fiber::sleep_for(100ms);
          std::raise(SIGINT);  // as if someone pressed Ctrl-C
        });
      } else {
        std::printf("serving (pid %d): press Ctrl-C or run kill -TERM %d\n",
                    static_cast<int>(getpid()), static_cast<int>(getpid()));
        std::fflush(stdout);
      }
      std::printf("main: serving\n");
      worker.join();
    });
  }
  std::printf("block_on_main returned %d\n", status);
  if (!self_test) return status;
  const bool ok = status == 130 && finalizers.load() == 2;
  std::printf("self-test: %s\n", ok ? "ok (exit status 130, both finalizers ran)" : "FAILED");
  return ok ? 0 : 1;
}
