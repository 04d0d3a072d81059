// Test support: a fixture parameterised over worker counts that fails when a
// test leaks a fiber (a root still running at the end), a fiber handle or a
// stack; and an EventLog for asserting the order of events.
#pragma once

#include <weft/weft.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace weft::test {

// EventLog records events from any fiber or thread, in order.
class EventLog {
 public:
  // add() appends an event.
  void add(std::string e) {
    std::lock_guard lk(mu_);
    events_.push_back(std::move(e));
  }
  // events() is a copy of what was recorded.
  std::vector<std::string> events() const {
    std::lock_guard lk(mu_);
    return events_;
  }
  // index_of() is the position of e, or -1.
  int index_of(const std::string& e) const;
  // count() is how many times e was recorded.
  int count(const std::string& e) const;

 private:
  mutable std::mutex mu_;
  std::vector<std::string> events_;
};

// RuntimeTest runs each test on a fresh Runtime with GetParam() workers and
// checks for leaks when the test ends.
class RuntimeTest : public ::testing::TestWithParam<unsigned> {
 protected:
  void SetUp() override;
  void TearDown() override;
  // run() executes f as a root fiber and returns its Exit.
  template <class F>
  auto run(F&& f) {
    return rt_->block_on(std::forward<F>(f));
  }
  Runtime& rt() { return *rt_; }
  unsigned workers() const { return GetParam(); }

  std::unique_ptr<Runtime> rt_;
  std::int64_t objects_before_ = 0;
};

// parked() is true while `f` is suspended at a wait (its run state is
// src-private: tests/support/weft_test.cpp reads it).
bool parked(detail::FiberCore& f) noexcept;

// wait_parked() yields until f is suspended at a wait (not runnable, not
// running): the deterministic way to interrupt a fiber that is blocked.
template <class T>
void wait_parked(const Fiber<T>& f) {
  while (!parked(detail::core_of(f)) && !f.done()) this_fiber::yield();
}

// yield_until() yields until pred() holds (no sleeps).
template <class P>
void yield_until(P pred) {
  while (!pred()) this_fiber::yield();
}

// HoldOtherWorkers keeps every worker but the caller's busy (spinning, no
// yield point), so a fiber forked meanwhile cannot be stolen and started by
// another worker: a test that needs the forker's own worker to be the one
// that meets its child forces it at every worker count. Construct it in a
// fiber of a runtime with `workers` workers; release() before the end.
class HoldOtherWorkers {
 public:
  explicit HoldOtherWorkers(unsigned workers) {
    for (unsigned i = 1; i < workers; ++i)
      spinners_.push_back(fork([this] {
        running_.fetch_add(1);
        while (!release_.load()) {
        }
      }));
    yield_until([&] { return running_.load() == static_cast<int>(spinners_.size()); });
  }
  // release() lets the spinners end and awaits them.
  void release() {
    release_.store(true);
    for (auto& s : spinners_) (void)s.await();
  }

 private:
  std::atomic<int> running_{0};
  std::atomic<bool> release_{false};
  std::vector<Fiber<void>> spinners_;
};

// contains() is true when ids holds id (e.g. a Cause's interruptors).
inline bool contains(const std::vector<FiberId>& ids, FiberId id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

// Boom is the test failure type of the combinator tests.
struct Boom : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Forever is a duration nobody waits out in a test.
inline constexpr std::chrono::hours kForever{24};

// kWorkerCounts are the worker counts every runtime test runs with.
inline const auto kWorkerCounts = ::testing::Values(1u, 2u, 4u);

// WorkerName prints "workers1" etc. in test names.
std::string WorkerName(const ::testing::TestParamInfo<unsigned>& info);

}  // namespace weft::test

// WEFT_RUNTIME_TEST_SUITE instantiates a RuntimeTest subclass for 1, 2, 4 workers.
#define WEFT_RUNTIME_TEST_SUITE(Suite) \
  INSTANTIATE_TEST_SUITE_P(Workers, Suite, ::weft::test::kWorkerCounts, ::weft::test::WorkerName)
