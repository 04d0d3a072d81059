// The one wait primitive; see include/weft/detail/wait_queue.hpp and
// docs/internals.md ("wait_word_").
#include <weft/detail/assert.hpp>
#include <weft/detail/wait_queue.hpp>

#include "scheduler/futex.hpp"
#include "wait/thread_parker.hpp"

#include <thread>

namespace weft::detail {

// ---------------------------------------------------------------------------
// WaitOwner

std::uint64_t WaitOwner::begin_wait(bool interruptible) noexcept {
  const std::uint64_t epoch = (wait_word_.load(std::memory_order_relaxed) >> kEpochShift) + 1;
  // seq_cst: the interrupter writes its flag then reads this word; we write
  // this word then read its flag. One of us sees the other (Dekker).
  wait_word_.store((epoch << kEpochShift) | (interruptible ? kInterruptibleBit : 0) |
                       static_cast<std::uint64_t>(WaitStatus::waiting),
                   std::memory_order_seq_cst);
  return epoch;
}

bool WaitOwner::try_claim(std::uint64_t epoch, WaitStatus to) noexcept {
  std::uint64_t word = wait_word_.load(std::memory_order_acquire);
  for (;;) {
    if ((word >> kEpochShift) != epoch ||
        (word & kStatusMask) != static_cast<std::uint64_t>(WaitStatus::waiting))
      return false;
    if (to == WaitStatus::interrupted && (word & kInterruptibleBit) == 0) return false;
    const std::uint64_t claimed = (word & ~kStatusMask) | static_cast<std::uint64_t>(to);
    // acq_rel: the claimer's writes (e.g. a hand-off payload) happen-before
    // the owner's read of the status after it resumes.
    if (wait_word_.compare_exchange_weak(word, claimed, std::memory_order_acq_rel,
                                         std::memory_order_acquire))
      return true;
  }
}

bool WaitOwner::try_claim_interrupted() noexcept {
  // seq_cst: the interrupter stored its request (seq_cst) before this load;
  // the owner stored this word (begin_wait, seq_cst) before reading the
  // request (interrupt_pending_after_begin, seq_cst). One sees the other.
  const std::uint64_t word = wait_word_.load(std::memory_order_seq_cst);
  if ((word & kStatusMask) != static_cast<std::uint64_t>(WaitStatus::waiting) ||
      (word & kInterruptibleBit) == 0)
    return false;
  return try_claim(word >> kEpochShift, WaitStatus::interrupted);
}

namespace {

// ThreadWaiter lets a plain thread wait on a WaitQueue (it blocks the
// thread on a futex). A plain thread is never interrupted.
class ThreadWaiter final : public WaitOwner {
 public:
  bool interruptible_now() const noexcept override { return false; }
  bool interrupt_pending_after_begin() const noexcept override { return false; }
  void park(std::optional<std::chrono::steady_clock::time_point> deadline, const WaitSite&,
            std::uint64_t epoch) noexcept override {
    using Clock = std::chrono::steady_clock;
    while (resumed_.load(std::memory_order_acquire) == 0) {
      if (deadline && Clock::now() >= *deadline) {
        if (try_claim(epoch, WaitStatus::timed_out)) return;
        deadline.reset();  // someone else claimed it: wait for their unpark()
        continue;
      }
      futex_wait(resumed_, 0, deadline);
    }
    resumed_.store(0, std::memory_order_relaxed);
  }
  void unpark() noexcept override {
    resumed_.store(1, std::memory_order_release);
    futex_wake(resumed_);
  }
  Cause take_wait_cause(bool) override {
    WEFT_ASSERT(false, "a plain thread's wait cannot be interrupted");
    return Cause();
  }

 private:
  std::atomic<std::uint32_t> resumed_{0};
};

}  // namespace

WaitOwner& this_thread_parker() noexcept {
  thread_local ThreadWaiter tls_parker;
  return tls_parker;
}

// ---------------------------------------------------------------------------
// WaitQueue

void WaitQueue::push_back(Waiter& w) noexcept {
  list_.push_back(w);
  w.linked = true;
}

void WaitQueue::unlink(Waiter& w) noexcept {
  if (!w.linked) return;
  list_.remove(w);
  w.linked = false;
}

// Not analysed: clang 14 cannot follow `lk`, a guard passed in.
WaitStatus WaitQueue::wait(WaitOwner& owner, std::unique_lock<SpinLock>& lk, Waiter& w,
                           const WaitOptions& opts) WEFT_NO_THREAD_SAFETY_ANALYSIS {
  const bool interruptible = opts.interruptible && owner.interruptible_now();
  // Before the wait becomes claimable: a claimer's unpark() may run as soon
  // as begin_wait() publishes the word (an interrupter does not take the
  // queue lock), and must find a fiber `parking`, never `running`.
  owner.prepare_park();
  w.owner = &owner;
  w.epoch = owner.begin_wait(interruptible);
  push_back(w);
  // A request that arrived before begin_wait: claim our own wait, never
  // sleep. If an interrupter claims it first, it unparks us and park()
  // below returns at once.
  if (interruptible && owner.interrupt_pending_after_begin() &&
      owner.try_claim(w.epoch, WaitStatus::interrupted)) {
    owner.cancel_park();
    unlink(w);
    lk.unlock();
    return WaitStatus::interrupted;
  }
  lk.unlock();  // release: publishes the link to wakers
  owner.park(opts.deadline, opts.site, w.epoch);
  if (!interruptible) owner.note_masked_wait_end();
  const WaitStatus st = owner.status();
  if (st != WaitStatus::woken) {
    lk.lock();
    unlink(w);
    lk.unlock();
  }
  return st;
}

Waiter* WaitQueue::claim_one() noexcept {
  while (Waiter* w = list_.front()) {
    unlink(*w);
    if (w->owner->try_claim(w->epoch, WaitStatus::woken)) return w;
  }
  return nullptr;
}

}  // namespace weft::detail
