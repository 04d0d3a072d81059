// Tracer: writes RuntimeOptions::trace_path, a Chrome Trace Event file
// (JSON object form) that chrome://tracing, Perfetto and tools/ read. The
// format is in docs/debugging-trace-stats.md.
//
// Each worker appends events to its own buffer without a lock (only its
// thread writes it; a deterministic runtime drives every worker from one
// thread); threads that are not workers share one buffer under a mutex. A
// buffer that passes kFlushBytes is written to the file by the thread that
// filled it, under the file mutex, so memory stays bounded without a
// background thread. finish() (from ~Scheduler, after every thread of the
// runtime stopped) writes what is left and closes the JSON array.
//
// The hooks in the scheduler and the fiber code are one predictable branch
// when tracing is off: `if (Tracer* t = scheduler.tracer()) [[unlikely]]`.
// Build with -DWEFT_TRACE_HOOKS=0 to compile them out (benchmarks only).
#pragma once

#include <weft/fiber_id.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#ifndef WEFT_TRACE_HOOKS
#define WEFT_TRACE_HOOKS 1
#endif

namespace weft::detail {

class FiberControl;
class Worker;

// ExitKind is how a fiber ended, as the exit event says it.
enum class ExitKind : std::uint8_t { success, failure, interrupted };

// Tracer is one runtime's trace file (see the file comment).
class Tracer {
 public:
  // Tracer() creates `path` and writes the metadata events; throws
  // std::system_error when the file cannot be created.
  Tracer(const std::string& path, const std::string& runtime_name, unsigned workers);
  ~Tracer();
  Tracer(const Tracer&) = delete;
  Tracer& operator=(const Tracer&) = delete;

  // Each hook takes the worker whose thread calls it (nullptr: not a worker).
  // fork(): f was started by `parent` (0 for a root).
  void fork(Worker* w, const FiberControl& f, std::uint64_t parent);
  // run_begin() returns the start of a run slice of f on w, and ends the
  // wake flow pending on f there.
  std::int64_t run_begin(Worker& w, const FiberControl& f);
  // run_end() writes the run slice of f that began at `start_ns`.
  void run_end(Worker& w, const FiberControl& f, std::int64_t start_ns);
  // park(): f suspends at a wait for `what`, made at file:line (file: a
  // path, or nullptr when the call site is unknown).
  void park(Worker* w, const FiberControl& f, const char* what, const char* file, unsigned line);
  // wake(): the calling fiber (or a timer, the reactor, a plain thread: by
  // 0) makes f runnable; starts a wake flow.
  void wake(Worker* w, const FiberControl& f);
  // steal(): w took f from worker `from`.
  void steal(Worker& w, const FiberControl& f, unsigned from);
  // interrupt_requested(): `by` asked f to stop; starts an interrupt flow.
  void interrupt_requested(Worker* w, const FiberControl& f, FiberId by);
  // interrupt_delivered(): an interrupt began to end f; ends its flow.
  void interrupt_delivered(Worker* w, const FiberControl& f);
  // finalizer(): f's end-of-life finalizers begin (start) or end.
  void finalizer(Worker* w, const FiberControl& f, bool start);
  // exit(): f ended with `kind`.
  void exit(Worker* w, const FiberControl& f, ExitKind kind);
  // finish() writes the buffers and the closing bracket and closes the file;
  // no hook may run after it.
  void finish();

 private:
  struct alignas(64) Buffer {
    std::string text;
  };
  std::int64_t now_ns() const noexcept;
  // append() runs write(std::string&) on the caller's buffer and flushes
  // the buffer when it is full.
  template <class Write>
  void append(Worker* w, Write write);
  // instant() writes an instant event of `fiber`; args(out) appends the
  // arguments after "fiber" (each as ,"key":value).
  template <class Args>
  void instant(Worker* w, const char* name, std::uint64_t fiber, std::int64_t ts, Args args);
  void instant(Worker* w, const char* name, std::uint64_t fiber);
  void flow(Worker* w, bool start, const char* kind, std::uint64_t id, std::int64_t ts);
  void flush(std::string& text);
  // Pending flows, by fiber id and kind (0: wake, 1: interrupt): a wake's
  // ends where the fiber next runs, an interrupt's where it is delivered.
  // Kept here, not in the fiber, so that tracing costs a fiber no memory
  // when it is off; sharded to spread the workers' lookups.
  void set_pending(std::uint64_t fiber, int kind, std::uint64_t flow);
  std::uint64_t take_pending(std::uint64_t fiber, int kind);
  struct alignas(64) PendingShard {
    std::mutex mu;
    std::unordered_map<std::uint64_t, std::uint64_t> flows;  // under mu
  };
  static constexpr std::size_t kShards = 16;

  static constexpr std::size_t kFlushBytes = 64 * 1024;
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::vector<Buffer> buffers_;  // one per worker, owner-written
  std::mutex outside_mu_;
  std::string outside_;  // threads that are not workers (tid 0), under outside_mu_
  std::mutex file_mu_;
  std::FILE* file_;  // under file_mu_
  std::array<PendingShard, kShards> pending_;
  // Flow ids (relaxed: only uniqueness matters).
  std::atomic<std::uint64_t> next_flow_{1};
};

}  // namespace weft::detail
