// BlockingPool: the threads of weft::blocking(). See blocking_pool.hpp and
// docs/internals.md ("The blocking pool").
#include "io/blocking_pool.hpp"

#include <weft/detail/assert.hpp>

#include "scheduler/scheduler.hpp"

#include <pthread.h>

#include <utility>

namespace weft::detail {

BlockingPool::BlockingPool(const RuntimeOptions& options)
    : max_threads_(options.blocking_threads),
      idle_timeout_(options.blocking_idle),
      thread_name_(options.name.substr(0, kThreadNamePrefix) + "/blk") {}

void BlockingPool::stop() noexcept {
  ThreadList running;
  std::thread exited;
  {
    std::lock_guard lk(mu_);
    // Every caller parks until its job is done or abandoned, and every fiber
    // has ended before the scheduler goes: a queued job here was lost.
    WEFT_ASSERT(queue_.empty(), "{} blocking calls still queued at runtime destruction",
                queue_.size());
    stopping_ = true;
    // From here on no thread touches threads_ or exited_ (run() checks
    // stopping_ under mu_ before retiring), so we may take them.
    running.swap(threads_);
    exited.swap(exited_);
  }
  work_cv_.notify_all();
  for (std::thread& t : running) t.join();
  if (exited.joinable()) exited.join();
}

void BlockingPool::submit(BlockingJob& job) {
  std::lock_guard lk(mu_);
  WEFT_ASSERT(!stopping_, "weft::blocking submitted to a pool that is stopping");
  job.state.store(BlockingJobState::queued, std::memory_order_relaxed);
  queue_.push_back(job);
  if (idle_ > 0) {
    // Hand the wake-up to one idle thread (Tokio's num_notify): a second
    // submit before it wakes must not count it idle again.
    --idle_;
    ++notified_;
    work_cv_.notify_one();
    return;
  }
  // Every thread is busy: start one below the cap, else the first thread
  // to finish its job takes this one (FIFO).
  if (threads_.size() >= max_threads_) return;
  try {
    start_thread();
  } catch (...) {
    if (!threads_.empty()) return;  // a running thread will take the job
    queue_.remove(job);
    throw;  // nobody could ever run it: the caller gets the std::system_error
  }
}

bool BlockingPool::cancel(BlockingJob& job) {
  std::lock_guard lk(mu_);
  if (job.state.load(std::memory_order_relaxed) != BlockingJobState::queued) return false;
  queue_.remove(job);
  job.state.store(BlockingJobState::abandoned, std::memory_order_relaxed);
  return true;
}

BlockingPool::Stats BlockingPool::stats() const {
  std::lock_guard lk(mu_);
  return Stats{threads_.size(), idle_, queue_.size()};
}

void BlockingPool::start_thread() {
  // The new thread takes mu_ before it looks at its node, and we hold mu_
  // until the node holds its std::thread.
  const ThreadList::iterator self = threads_.emplace(threads_.end());
  try {
    *self = std::thread([this, self] { run(self); });
  } catch (...) {
    threads_.erase(self);
    throw;
  }
  pthread_setname_np(self->native_handle(), thread_name_.c_str());
}

void BlockingPool::run(ThreadList::iterator self) {
  std::unique_lock lk(mu_);
  while (wait_for_job(lk)) {
    BlockingJob* job = queue_.front();
    if (job == nullptr) continue;  // its caller was interrupted and took it back
    queue_.remove(*job);
    job->state.store(BlockingJobState::running, std::memory_order_relaxed);
    lk.unlock();
    execute(*job);
    lk.lock();
  }
  if (!stopping_) retire(lk, self);
}

bool BlockingPool::wait_for_job(std::unique_lock<std::mutex>& lk) {
  if (!queue_.empty()) return true;
  if (stopping_) return false;
  ++idle_;
  using Clock = std::chrono::steady_clock;
  const Clock::time_point now = Clock::now();
  // A keep-alive past the end of the clock is no deadline at all.
  const bool forever = idle_timeout_ >= Clock::time_point::max() - now;
  const Clock::time_point deadline =
      forever ? Clock::time_point::max()
              : now + std::chrono::duration_cast<Clock::duration>(idle_timeout_);
  for (;;) {
    bool timed_out = false;
    if (forever) {
      work_cv_.wait(lk);
    } else {
      timed_out = work_cv_.wait_until(lk, deadline) == std::cv_status::timeout;
    }
    if (notified_ > 0) {  // submit() already took us off idle_
      --notified_;
      return true;
    }
    if (stopping_ || timed_out) {
      --idle_;
      // A job queued while every thread counted as idle was notified (above),
      // so the queue is empty here unless one came in since the timeout.
      return !stopping_ && !queue_.empty();
    }
    // A spurious wake-up: keep waiting for the same deadline.
  }
}

void BlockingPool::execute(BlockingJob& job) noexcept {
  job.task.run(job.stop.get_token());
  std::unique_lock lk(job.waiters.lock());
  job.state.store(BlockingJobState::done, std::memory_order_relaxed);
  // Claim, unlock, resume: after the unlock the caller may return and its
  // frame (the job) die, and we touch it no more (SyncQueue's lifetime rule).
  (void)job.waiters.wake_all(lk, [](Waiter*) {});
}

void BlockingPool::retire(std::unique_lock<std::mutex>& lk, ThreadList::iterator self) {
  // Our std::thread goes to exited_ for the next thread to end (or the
  // destructor) to join; we join the one that ended before us (Tokio's
  // last_exiting_thread), outside the lock: it has already left it.
  std::thread previous = std::exchange(exited_, std::move(*self));
  threads_.erase(self);
  lk.unlock();
  if (previous.joinable()) previous.join();
}

}  // namespace weft::detail
