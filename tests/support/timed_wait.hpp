// Test support for the timed waits (`_until` / `_for`) of the sync
// primitives: a short deadline for tests whose subject is the deadline
// itself, and the options of the deterministic runtimes that force a
// wake-up to race a deadline.
#pragma once

#include "support/scale.hpp"

#include <weft/runtime.hpp>

#include <chrono>
#include <cstdint>

namespace weft::test {

// kShortWait is a deadline a timed wait is expected to reach (the deadline
// itself is what such a test checks; nothing synchronises on it).
inline constexpr std::chrono::milliseconds kShortWait{2};

// kRaceSeeds is how many seeds a wake-up-vs-deadline race test schedules
// (race_rounds(): 80 under TSan, which still covers every deadline offset).
inline constexpr std::uint64_t kRaceSeeds = race_rounds(std::uint64_t{400});

// race_options() is a deterministic runtime for a wake-up-vs-deadline race:
// its virtual clock advances 1 us per scheduling step, so a deadline a few
// microseconds away fires among the other fibers' steps as the seed decides.
inline RuntimeOptions race_options(std::uint64_t seed, unsigned workers = 2) {
  RuntimeOptions o;
  o.workers = workers;
  o.seed = seed;
  o.deterministic = true;
  return o;
}

// race_deadline_us() is the deadline offset (us) a race's seed picks.
inline std::chrono::microseconds race_deadline_us(std::uint64_t seed) {
  return std::chrono::microseconds(1 + seed % 13);
}

// race_delay_steps() is how many yields the waker of a race's seed makes first.
inline int race_delay_steps(std::uint64_t seed) { return static_cast<int>((seed / 13) % 9); }

}  // namespace weft::test
