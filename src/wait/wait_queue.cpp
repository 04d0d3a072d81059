// The one wait primitive; see include/weft/detail/wait_queue.hpp and
// docs/internals.md ("wait_word_").
#include <weft/detail/wait_queue.hpp>

#include <weft/detail/fiber_core.hpp>

#include "scheduler/futex.hpp"
#include "scheduler/scheduler.hpp"

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

namespace {

// ThreadWaiter lets a plain thread wait on a WaitQueue (it blocks the thread).
class ThreadWaiter final : public WaitOwner {
 public:
  void resume() noexcept override {
    resumed_.store(1, std::memory_order_release);
    futex_wake(resumed_);
  }
  WaitStatus park(std::optional<Clock::time_point> deadline, std::uint64_t epoch) {
    while (resumed_.load(std::memory_order_acquire) == 0) {
      if (deadline && Clock::now() >= *deadline) {
        if (try_claim(epoch, WaitStatus::timed_out)) return WaitStatus::timed_out;
        deadline.reset();  // someone else claimed it: wait for their resume()
        continue;
      }
      futex_wait(resumed_, 0, deadline);
    }
    resumed_.store(0, std::memory_order_relaxed);
    return status();
  }

 private:
  std::atomic<std::uint32_t> resumed_{0};
};

ThreadWaiter& this_thread_waiter() {
  thread_local ThreadWaiter waiter;
  return waiter;
}

// A fiber's deadline: the timer claims the wait as timed_out.
void fire_wait_timer(TimerEntry* e) {
  auto* w = static_cast<Waiter*>(e->user);
  if (w->owner->try_claim(w->epoch, WaitStatus::timed_out)) w->owner->resume();
}

}  // namespace

// ---------------------------------------------------------------------------
// WaitQueue

void WaitQueue::push_back(Waiter& w) noexcept {
  w.prev = tail_;
  w.next = nullptr;
  if (tail_ != nullptr)
    tail_->next = &w;
  else
    head_ = &w;
  tail_ = &w;
  w.linked = true;
}

void WaitQueue::unlink(Waiter& w) noexcept {
  if (!w.linked) return;
  if (w.prev != nullptr)
    w.prev->next = w.next;
  else
    head_ = w.next;
  if (w.next != nullptr)
    w.next->prev = w.prev;
  else
    tail_ = w.prev;
  w.prev = w.next = nullptr;
  w.linked = false;
}

// Not analysed: clang 14 cannot follow `lk`, a guard passed in.
WaitStatus WaitQueue::wait(std::unique_lock<SpinLock>& lk, Waiter& w,
                           const WaitOptions& opts) WEFT_NO_THREAD_SAFETY_ANALYSIS {
  FiberCore* fiber = current_fiber();
  if (fiber == nullptr) {
    ThreadWaiter& tw = this_thread_waiter();
    w.owner = &tw;
    w.epoch = tw.begin_wait(false);
    push_back(w);
    lk.unlock();
    WaitStatus st = tw.park(opts.deadline, w.epoch);
    if (st != WaitStatus::woken) {
      lk.lock();
      unlink(w);
      lk.unlock();
    }
    return st;
  }

  const bool interruptible = opts.interruptible && fiber->interruptible_now();
  // `parking` before the wait becomes claimable: a claimer's resume() may run
  // as soon as begin_wait() publishes the word (an interrupter does not take
  // the queue lock), and must find the fiber parking, never running.
  fiber->run_state().store(RunState::parking, std::memory_order_relaxed);
  w.owner = fiber;
  w.epoch = fiber->begin_wait(interruptible);
  push_back(w);
  // A request that arrived before begin_wait: claim our own wait, never sleep.
  // If an interrupter claims it first, it resumes us (parking -> notified)
  // and the switch below returns at once.
  if (interruptible && fiber->interrupt_pending() &&
      fiber->try_claim(w.epoch, WaitStatus::interrupted)) {
    fiber->run_state().store(RunState::running, std::memory_order_relaxed);
    unlink(w);
    lk.unlock();
    return WaitStatus::interrupted;
  }
  TimerEntry timer;
  TimerHeap* heap = nullptr;
  if (opts.deadline) {
    timer.deadline = *opts.deadline;
    timer.fire = &fire_wait_timer;
    timer.user = &w;
    heap = &fiber->worker()->timers();
    heap->insert(&timer);
  }
  fiber->set_blocked_on(opts.what != nullptr ? opts.what : "wait");
  lk.unlock();  // release: publishes the link and `parking` to wakers
  fiber->suspend(SwitchAction::park);
  fiber->set_blocked_on(nullptr);
  if (heap != nullptr) heap->cancel(&timer);  // waits for a fire in progress
  const WaitStatus st = fiber->status();
  if (st != WaitStatus::woken) {
    lk.lock();
    unlink(w);
    lk.unlock();
  }
  return st;
}

Waiter* WaitQueue::claim_one() noexcept {
  while (Waiter* w = head_) {
    unlink(*w);
    if (w->owner->try_claim(w->epoch, WaitStatus::woken)) return w;
  }
  return nullptr;
}

bool WaitQueue::wake_one() noexcept {
  std::unique_lock lk(lock_);
  Waiter* w = claim_one();
  lk.unlock();
  if (w == nullptr) return false;
  resume(w);
  return true;
}

std::size_t WaitQueue::wake_all() noexcept {
  std::unique_lock lk(lock_);
  return wake_all_locked(lk);
}

// Not analysed: clang 14 cannot follow `lk`, a guard passed in.
std::size_t WaitQueue::wake_all_locked(std::unique_lock<SpinLock>& lk) noexcept
    WEFT_NO_THREAD_SAFETY_ANALYSIS {
  // Claim under the lock, resume after releasing it. Claimed waiters are
  // chained through `next` (they are unlinked, so the field is free).
  Waiter* claimed = nullptr;
  std::size_t n = 0;
  while (Waiter* w = claim_one()) {
    w->next = claimed;
    claimed = w;
    ++n;
  }
  lk.unlock();
  while (claimed != nullptr) {
    Waiter* w = claimed;
    claimed = w->next;  // read before resume(): w dies with its owner's frame
    resume(w);
  }
  return n;
}

}  // namespace weft::detail
