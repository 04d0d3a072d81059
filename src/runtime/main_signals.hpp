// MainSignals: the signal routing behind Runtime::block_on_main (the
// contract is in include/weft/signals.hpp).
#pragma once

#include <weft/detail/fiber_core.hpp>

#include <initializer_list>
#include <memory>

namespace weft::detail {

// MainSignals routes signals to the main fiber for the time block_on_main
// runs (RAII: the destructor restores the previous handlers).
class MainSignals {
 public:
  // MainSignals(signals) installs the handlers (before the main fiber starts,
  // so that no early signal is lost).
  explicit MainSignals(std::initializer_list<int> signals);
  // ~MainSignals() restores the previous handlers.
  ~MainSignals();
  MainSignals(const MainSignals&) = delete;
  MainSignals& operator=(const MainSignals&) = delete;

  // run() turns signals into interrupts of `main` until it ended, then
  // returns the exit status (0 on success; see weft/signals.hpp).
  int run(FiberCore& main);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace weft::detail
