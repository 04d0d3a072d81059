// Timer helpers for the timeout tests: what a test asserts when it promises
// that no timer entry outlives a call.
#pragma once

#include "scheduler/scheduler.hpp"

#include <chrono>
#include <cstddef>

namespace weft::test {

// kLong is a sleep or a deadline nobody waits out.
inline constexpr auto kLong = std::chrono::hours(1);

// pending_timers() counts the timer entries of every worker of the calling
// fiber's runtime.
inline std::size_t pending_timers() {
  detail::Scheduler* s = detail::current_scheduler();
  std::size_t n = 0;
  for (unsigned i = 0; i < s->worker_count(); ++i) n += s->worker(i).timers().size();
  return n;
}

}  // namespace weft::test
