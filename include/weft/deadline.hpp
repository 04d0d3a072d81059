// Deadline: the point in time at which a timed wait gives up (the
// `_until(Deadline)` forms of every blocking call; DESIGN.md §1).
//
// Clock: deadlines are points on this_fiber::now()'s clock, which is
// std::chrono::steady_clock, or the runtime's virtual clock inside a fiber
// of a RuntimeOptions::deterministic runtime. The `_for(d)` forms compute
// this_fiber::now() + d, saturating: a huge d never overflows (it waits as
// long as the untimed form), a zero or negative d has already passed.
#pragma once

#include <chrono>

namespace weft {

// Deadline is when a timed wait gives up (a steady_clock time point).
using Deadline = std::chrono::steady_clock::time_point;

namespace detail {
// deadline_after() is this_fiber::now() + d, saturating at Deadline::max()
// (which timed waits read as "no deadline"); d <= 0 gives now.
Deadline deadline_after(std::chrono::nanoseconds d) noexcept;
}  // namespace detail

}  // namespace weft
