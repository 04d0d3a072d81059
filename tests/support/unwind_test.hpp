// UnwindTest: a Runtime with RuntimeOptions::interrupt_unwind on, per worker
// count, for tests/test_interrupt_unwind*.cpp.
#pragma once

#include "support/weft_test.hpp"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <utility>

#include <weft/weft.hpp>

namespace weft::test {

class UnwindTest : public ::testing::TestWithParam<unsigned> {
 protected:
  void SetUp() override { start(/*deterministic=*/false); }
  void TearDown() override {
    EXPECT_EQ(rt_->stats().unfinished_roots, 0u) << rt_->dump();
    rt_.reset();
  }
  template <class F>
  auto run(F&& f) {
    return rt_->block_on(std::forward<F>(f));
  }
  // use_virtual_clock() replaces the runtime by a deterministic one (same
  // workers, on one thread, RuntimeOptions::deterministic): its clock jumps
  // to a deadline only when every fiber is blocked, so a short timeout fires
  // at a task that has parked, and is walked, never at one the OS stopped
  // on its way to the wait (then the deadline is found at the wait's entry
  // and thrown, not walked). For the tests that count walks exactly.
  void use_virtual_clock() { start(/*deterministic=*/true); }
  // start() (re)creates the runtime: GetParam() workers, interrupt_unwind on.
  void start(bool deterministic) {
    rt_.reset();
    RuntimeOptions o;
    o.workers = GetParam();
    o.interrupt_unwind = true;
    o.deterministic = deterministic;
    rt_ = std::make_unique<Runtime>(o);
  }
  std::uint64_t unwound() const { return rt_->stats().interrupts_unwound; }
  std::uint64_t delivered() const { return rt_->stats().interrupts_delivered; }
  // walk_supported: the targets the walker reads (src/unwind/frame_rule.hpp).
  static constexpr bool kWalks =
#if defined(__x86_64__) && defined(__linux__) && defined(__GLIBCXX__)
      true;
#else
      false;
#endif
  std::unique_ptr<Runtime> rt_;
};

inline bool has_interruptor(const Cause& c, FiberId id) {
  auto v = c.interruptors();
  return std::find(v.begin(), v.end(), id) != v.end();
}

}  // namespace weft::test
