// BlockingPool: a runtime's threads for weft::blocking() (include/weft/blocking.hpp;
// docs/internals.md "The blocking pool").
//
// Shaped after Tokio's blocking pool (tokio/src/runtime/blocking/pool.rs):
// one mutex-guarded FIFO of jobs, threads started on demand up to a cap
// (RuntimeOptions::blocking_threads), an idle thread waits on a condition
// variable and ends after RuntimeOptions::blocking_idle without work, and an
// ending thread joins the one that ended before it, so that at most one
// ended thread is left for the destructor to join.
#pragma once

#include <weft/blocking.hpp>
#include <weft/detail/intrusive_list.hpp>
#include <weft/detail/sync_queue.hpp>
#include <weft/runtime_options.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>

namespace weft::detail {

// BlockingJobState is where one blocking() call is. Written only under the
// lock named; atomic (relaxed) because the caller reads it under the other.
enum class BlockingJobState : std::uint8_t {
  queued,     // in the pool's FIFO (pool mutex)
  running,    // a pool thread took it and calls f (pool mutex)
  done,       // f returned; the caller may take the result (the job's wait lock)
  abandoned,  // the caller was interrupted while it was queued: it never runs (pool mutex)
};

// BlockingJob is one call's record, on the calling fiber's stack (run_blocking
// outlives it: it returns only once the job is done or abandoned).
struct BlockingJob {
  explicit BlockingJob(BlockingTask& t, bool stoppable)
      : task(t), stop(stoppable ? std::stop_source() : std::stop_source(std::nostopstate)) {}

  BlockingTask& task;
  ListHook<BlockingJob> hook;  // the pool's FIFO (pool mutex)
  std::atomic<BlockingJobState> state{BlockingJobState::queued};
  // stop is requested by the caller when interrupted while f runs. It has
  // no state (its token never fires) when f takes no token or the caller is
  // not interruptible.
  std::stop_source stop;
  // The caller parks here; the pool thread wakes it (running -> done under its lock).
  SyncQueue waiters;
};

// BlockingPool runs BlockingJobs on its threads, first come first served.
class BlockingPool {
 public:
  // BlockingPool() starts no thread (threads come with the first submit()).
  explicit BlockingPool(const RuntimeOptions& options);
  // ~BlockingPool() is stop().
  ~BlockingPool() { stop(); }
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;

  // submit() queues `job` (state queued) and wakes an idle thread, or starts
  // one below the cap. Throws std::system_error (job not queued) when the
  // pool has no thread and cannot start one.
  void submit(BlockingJob& job);
  // stop() ends and joins every thread (idempotent); no job may be queued:
  // every caller was a fiber of the runtime, and they have all ended. After
  // it, submit() must not be called.
  void stop() noexcept;
  // cancel() takes `job` off the queue if it is still queued (-> abandoned);
  // false when a thread already took it.
  bool cancel(BlockingJob& job);

  // Stats: a snapshot, for RuntimeStats and tests.
  struct Stats {
    std::size_t threads = 0;  // started and not ended (busy or idle)
    std::size_t idle = 0;     // waiting for a job
    std::size_t queued = 0;   // jobs no thread has taken yet
  };
  Stats stats() const;

 private:
  using ThreadList = std::list<std::thread>;

  void start_thread();  // mu_ held
  void run(ThreadList::iterator self);
  // wait_for_job() waits (mu_ held via lk) until a job is queued; false when
  // the thread should end (idle too long, or the pool is stopping).
  bool wait_for_job(std::unique_lock<std::mutex>& lk);
  static void execute(BlockingJob& job) noexcept;
  void retire(std::unique_lock<std::mutex>& lk, ThreadList::iterator self);

  const unsigned max_threads_;
  const std::chrono::nanoseconds idle_timeout_;
  const std::string thread_name_;

  // Everything below is guarded by mu_.
  mutable std::mutex mu_;
  std::condition_variable work_cv_;  // idle threads wait here
  IntrusiveList<BlockingJob, &BlockingJob::hook> queue_;
  ThreadList threads_;        // running threads (their std::thread)
  std::thread exited_;        // the last thread that ended, joined by the next one or ~BlockingPool
  std::size_t idle_ = 0;      // idle threads not yet handed a wake-up
  std::size_t notified_ = 0;  // wake-ups handed to idle threads, not yet taken
  bool stopping_ = false;
};

}  // namespace weft::detail
