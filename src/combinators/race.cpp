// The machinery shared by race, all and for_each_par: a completion inbox on
// the WaitQueue and a Contest that never lets a contestant outlive it.
#include <weft/race.hpp>

#include <weft/detail/assert.hpp>

#include <mutex>

namespace weft::detail {

// ---------------------------------------------------------------------------
// CompletionQueue

CompletionQueue::CompletionQueue(std::size_t capacity)
    : ring_(std::make_unique<std::size_t[]>(capacity == 0 ? 1 : capacity)),
      capacity_(capacity == 0 ? 1 : capacity) {}

void CompletionQueue::post(std::size_t slot) noexcept {
  std::unique_lock lk(waiters_.lock());
  WEFT_ASSERT(size_ < capacity_, "CompletionQueue: {} slots posted, capacity {}", size_ + 1,
              capacity_);
  ring_[(head_ + size_) % capacity_] = slot;
  ++size_;
  Waiter* w = waiters_.claim();
  lk.unlock();
  // The popping fiber cannot free this queue before it is resumed and has
  // awaited our fiber's end, which comes after this call returns.
  if (w != nullptr) SyncQueue::resume(w);
}

std::size_t CompletionQueue::pop(const char* what) {
  std::unique_lock lk(waiters_.lock());
  while (size_ == 0) {
    WaitSlot slot;  // post() hands over nothing: the slot is in the ring
    waiters_.park(lk, slot, what, "weft: a race's completion queue destroyed while awaited");
    lk.lock();  // park() returned with the lock released
  }
  const std::size_t slot = ring_[head_];
  head_ = (head_ + 1) % capacity_;
  --size_;
  return slot;
}

// ---------------------------------------------------------------------------
// Contest

Contest::Contest(std::size_t slots, const char* what)
    : what_(what), queue_(slots), fibers_(slots) {}

Contest::~Contest() { stop(); }

void Contest::stop() noexcept {
  // DESIGN 3.9: the losers are interrupted by the racing fiber, then awaited
  // (all requests first, so they unwind in parallel).
  const FiberId me = current_id();
  for (FiberRef& f : fibers_)
    if (f && !f->done()) f->request_interrupt(me);
  for (FiberRef& f : fibers_)
    if (f) f->await_done_masked();
}

std::size_t Contest::next_ended() {
  const std::size_t slot = queue_.pop(what_);
  // The post comes just before the fiber ends (its children and Exit are
  // still to come): wait for the published Exit, which is what decides.
  fibers_[slot]->await_done();
  return slot;
}

std::size_t Contest::race(bool first_completion) {
  std::size_t winner = npos;
  try {
    for (std::size_t left = fibers_.size(); left > 0; --left) {
      const std::size_t slot = next_ended();
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

Cause Contest::parallel_cause() const {
  Cause all;
  for (const FiberRef& f : fibers_)
    if (f) all = Cause::parallel(std::move(all), f->exit_cause());
  return all;
}

}  // namespace weft::detail
