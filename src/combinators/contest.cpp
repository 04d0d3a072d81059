// Contest: the machinery shared by race, all and for_each_par; it never lets
// a contestant outlive it.
#include <weft/detail/contest.hpp>

#include <weft/interrupt.hpp>
#include <weft/this_fiber.hpp>

namespace weft::detail {

Contest::Contest(std::size_t slots, const char* what, weft::source_location where)
    : site_{what, this, where}, queue_(slots), fibers_(slots) {}

Contest::~Contest() { stop(); }

void Contest::stop() noexcept {
  // DESIGN 3.9: the losers are interrupted by the racing fiber, then awaited.
  fibers_.stop(current_id());
}

std::size_t Contest::next_ended() {
  const std::size_t slot = queue_.pop(site_);
  // The post comes just before the fiber ends (its children and Exit are
  // still to come): wait for the published Exit, which is what decides.
  fibers_[slot]->await_done();
  return slot;
}

std::size_t Contest::race(bool first_completion) {
  return race_loop(first_completion, fibers_.size(), npos);
}

std::size_t Contest::race_rest(bool first_completion, std::size_t decided) {
  return race_loop(first_completion, fibers_.size() - 1, decided);
}

std::size_t Contest::race_loop(bool first_completion, std::size_t left, std::size_t decided) {
  std::size_t winner = npos;
  try {
    for (; left > 0; --left) {
      std::size_t slot;
      if (decided != npos) {
        // The race is won (its winner is ending): the racer's own interrupt
        // now arrives "while the losers are awaited" and stays pending.
        Uninterruptible mask;
        slot = next_ended();
        if (slot == decided) decided = npos;
      } else {
        slot = next_ended();
      }
      if (first_completion || fibers_[slot]->exit_cause().empty()) {
        winner = slot;
        break;
      }
    }
  } catch (...) {
    stop();
    throw;
  }
  stop();
  return winner;
}

std::size_t Contest::all() {
  std::size_t failed = npos;
  try {
    for (std::size_t left = fibers_.size(); left > 0; --left) {
      const std::size_t slot = next_ended();
      if (!fibers_[slot]->exit_cause().empty()) {
        failed = slot;
        break;
      }
    }
  } catch (...) {
    stop();
    throw;
  }
  stop();
  return failed;
}

Cause Contest::run_bounded(std::size_t n, StartItem start, void* ctx) {
  Cause failure;
  try {
    std::size_t next = 0;
    std::size_t in_flight = 0;
    for (std::size_t slot = 0; slot < fibers_.size() && next < n; ++slot, ++in_flight)
      start(ctx, *this, next++, slot);
    while (in_flight > 0) {
      const std::size_t slot = next_ended();
      --in_flight;
      failure = fibers_[slot]->exit_cause();
      if (!failure.empty()) break;
      fibers_[slot] = FiberRef();
      if (next < n) {
        // A yield point per item: an interrupt stops the loop even when
        // items finish so fast that pop() never has to wait.
        this_fiber::check_interrupt();
        start(ctx, *this, next++, slot);
        ++in_flight;
      }
    }
  } catch (...) {
    stop();
    throw;
  }
  stop();
  return failure;
}

Cause Contest::parallel_cause(Cause first) const {
  Cause all = std::move(first);
  for (const FiberRef& f : fibers_)
    if (f) all = Cause::parallel(std::move(all), f->exit_cause());
  return all;
}

}  // namespace weft::detail
