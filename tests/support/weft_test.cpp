#include "support/weft_test.hpp"

#include "fiber/fiber_control.hpp"

#include <algorithm>

namespace weft::test {

bool parked(detail::FiberCore& f) noexcept {
  return detail::control(f).run_state() == detail::RunState::parked;
}

int EventLog::index_of(const std::string& e) const {
  std::lock_guard lk(mu_);
  auto it = std::find(events_.begin(), events_.end(), e);
  return it == events_.end() ? -1 : static_cast<int>(it - events_.begin());
}

int EventLog::count(const std::string& e) const {
  std::lock_guard lk(mu_);
  return static_cast<int>(std::count(events_.begin(), events_.end(), e));
}

void RuntimeTest::SetUp() {
  objects_before_ = detail::live_fiber_objects();
  RuntimeOptions o;
  o.workers = GetParam();
  rt_ = std::make_unique<Runtime>(o);
}

void RuntimeTest::TearDown() {
  // Every root the test started must have ended: a running root is a leak.
  EXPECT_EQ(rt_->stats().unfinished_roots, 0u) << "leaked fibers:\n" << rt_->dump();
  rt_.reset();  // the stack pool asserts that every stack came back
  EXPECT_EQ(detail::live_fiber_objects(), objects_before_) << "leaked fiber handles";
}

std::string WorkerName(const ::testing::TestParamInfo<unsigned>& info) {
  return "workers" + std::to_string(info.param);
}

}  // namespace weft::test
