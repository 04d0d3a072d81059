// The memory budget of a test (scale.hpp): a GoogleTest listener, registered
// before main() in every test_* executable (an object library, cmake/tests.cmake),
// fails the first test at whose end the process's peak RSS (VmHWM) is above
// kRssBudgetMiB or WEFT_TEST_RSS_BUDGET_MB. ctest runs each test in its own
// process, so the peak is that test's. The check is after the fact: it
// catches a test that grows (a new size, a sanitizer's overhead) while it is
// still far from exhausting the machine.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "support/scale.hpp"

namespace weft::test {
namespace {

// peak_rss_mib() is VmHWM from /proc/self/status, or 0 if unknown.
std::size_t peak_rss_mib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10) / 1024;
  }
  return 0;
}

std::size_t budget_mib() {
  if (const char* s = std::getenv("WEFT_TEST_RSS_BUDGET_MB")) return std::strtoull(s, nullptr, 10);
  return kRssBudgetMiB;
}

class RssBudget : public ::testing::EmptyTestEventListener {
 public:
  void OnTestEnd(const ::testing::TestInfo& info) override {
    const std::size_t budget = budget_mib();
    if (budget == 0 || reported_) return;
    const std::size_t peak = peak_rss_mib();
    if (peak <= budget) return;
    reported_ = true;  // the peak only grows: blame the test that raised it, once
    ADD_FAILURE() << info.test_suite_name() << "." << info.name() << ": peak RSS " << peak
                  << " MiB is above the test budget of " << budget
                  << " MiB (tests/support/scale.hpp: make it smaller under sanitizers with "
                     "test::scaled(); WEFT_TEST_RSS_BUDGET_MB overrides the budget)";
  }

 private:
  bool reported_ = false;
};

// Appended before main(): end events reach it before the result printer, so
// the failure is counted and printed with the test.
[[maybe_unused]] const bool registered = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new RssBudget);
  return true;
}();

}  // namespace
}  // namespace weft::test
