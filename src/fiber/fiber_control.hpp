// FiberControl: everything a fiber is besides its narrow public handle
// (FiberCore, include/weft/detail/fiber_core.hpp): the run state and its
// transitions, the worker and stack it runs on, the interruption records and
// mask status, the joiners, the children and the list links. It lives inside
// the FiberCore's opaque storage (no allocation of its own), is built and
// destroyed with it, and is seen only by src/. The state machine is written
// down in docs/internals.md.
#pragma once

#include <weft/detail/fiber_core.hpp>
#include <weft/detail/intrusive_list.hpp>
#include <weft/detail/local_map.hpp>
#include <weft/detail/spin_lock.hpp>
#include <weft/detail/sync_queue.hpp>
#include <weft/detail/thread_annotations.hpp>
#include <weft/detail/timeout_scope.hpp>
#include <weft/detail/wait_queue.hpp>
#include <weft/interrupted.hpp>

#include "context/context.hpp"
#include "context/stack.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

namespace weft::detail {

class Worker;
class FiberRef;

// RunState says where a fiber is; see docs/internals.md for who changes it.
enum class RunState : std::uint8_t {
  runnable,  // in a run queue (or being pushed to one)
  running,   // executing on a worker
  parking,   // suspending, still on its own stack
  parked,    // suspended; only the claimer of its wait resumes it
  notified,  // resumed while still parking: the worker requeues it after the switch-out
  done,      // ended; only handles keep the control block alive
};

// SwitchAction is what a fiber asked for when it switched out (owner-only).
enum class SwitchAction : std::uint8_t { none, yield, park, exit };

// RunStart is what FiberControl::begin_run() found.
enum class RunStart : std::uint8_t {
  resumed,          // it ran before: switch to its saved context
  first_run,        // give it a stack and start it
  ended_unstarted,  // interrupted before its first run (DESIGN 3.2): it never runs, and has ended
};

// AfterSwitch tells the worker what to do with a fiber that switched out.
enum class AfterSwitch : std::uint8_t {
  yielded,  // it yielded: put it on the yield queue
  requeue,  // it parked and was woken while parking: run it again (local queue)
  parked,   // it parked: its waker owns it now
  exited,   // it ended: release its stack, then retire() it
};

// FiberContext is the saved context, the stack and the overflow-report info.
struct FiberContext {
  ExecutionContext ctx{};
  Stack stack{};
  RunningFiberInfo info{};
};

// FiberControl is the src-private part of one fiber (see the file comment).
class FiberControl final : public WaitOwner {
 public:
  FiberControl(FiberCore& core, Scheduler& scheduler, FiberCore* parent,
               const ForkOptions& options);
  FiberControl(const FiberControl&) = delete;
  FiberControl& operator=(const FiberControl&) = delete;
  ~FiberControl() = default;

  // core() is the public handle this part belongs to (retain/release, id, done).
  FiberCore& core() const noexcept { return core_; }
  FiberId id() const noexcept { return core_.id(); }
  // name() is the name given at fork ("" when none).
  const std::string& name() const noexcept { return name_; }
  // scheduler() is the runtime this fiber belongs to.
  Scheduler& scheduler() const noexcept { return *scheduler_; }
  // parent() is the fork parent, nullptr for roots and daemons.
  FiberControl* parent() const noexcept { return parent_; }

  // --- awaiting --------------------------------------------------------------
  // await_done_masked() waits for the end without being interruptible.
  void await_done_masked() noexcept;
  // await_done_masked_until() is await_done_masked() with a deadline; false if it passed first.
  bool await_done_masked_until(std::chrono::steady_clock::time_point deadline) noexcept;
  // wait_end() parks on the joiners until the end or `deadline`; true once done.
  bool wait_end(std::chrono::steady_clock::time_point deadline, bool interruptible,
                const WaitSite& site);

  // --- interruption ------------------------------------------------------------
  // request_interrupt() is FiberCore::request_interrupt().
  void request_interrupt(FiberId by);
  bool interrupt_pending() const noexcept { return core_.interrupt_pending(); }
  // interrupting() is true once Interrupted was thrown in this fiber.
  bool interrupting() const noexcept {
    return (core_.interrupt_flags_.load(std::memory_order_relaxed) & FiberCore::kDelivered) != 0;
  }
  // interrupt_cause() is the Parallel cause of every recorded interruptor.
  Cause interrupt_cause() const;
  // stop_token() is a token requested when this fiber is interrupted.
  std::stop_token stop_token();

  // --- owner-only (the fiber itself) -------------------------------------------
  // interruptible_now() is true when a pending interrupt may be thrown here.
  bool interruptible_now() const noexcept override;
  // throw_interrupted() marks the fiber interrupting and throws Interrupted.
  // Always inlined: every frame between a throw and its catch costs the
  // unwinder a lookup and a CFI walk in both phases (docs/performance.md).
  [[noreturn, gnu::always_inline]] void throw_interrupted() {
    throw Interrupted(FiberControl::take_interrupt_cause());  // not virtual: we know the type
  }
  // deliver_interrupt() throws a pending interrupt when interruptible here.
  void deliver_interrupt();
  // check_interrupt_slow() is FiberCore::check_interrupt()'s slow path.
  void check_interrupt_slow();
  // mask state, used by the Uninterruptible/Interruptible guards.
  bool mask_status() const noexcept { return interruptible_; }
  void set_mask_status(bool interruptible) noexcept { interruptible_ = interruptible; }
  std::uint32_t& guard_depth() noexcept { return guard_depth_; }
  // add_finalizer_failure() records an exception thrown by a finalizer while
  // unwinding; it is added to the Exit's cause after the original.
  void add_finalizer_failure(std::exception_ptr e);
  // rethrown() is the slot of src/exit/rethrown.hpp (owner-only).
  Cause& rethrown() noexcept { return rethrown_; }
  // yield() switches to the worker, which requeues this fiber (owner-only).
  void yield() noexcept { suspend(SwitchAction::yield); }

  // --- the timeout scope (include/weft/detail/timeout_scope.hpp) ---------------
  // timeout_scope() is the TimeoutScope open on this fiber, or nullptr (owner).
  TimeoutScope* timeout_scope() const noexcept { return timeout_scope_; }
  // begin_timeout_scope() opens `s` (owner): saves the FiberLocals to restore
  // and the count of finalizer failures recorded so far.
  void begin_timeout_scope(TimeoutScope* s, LocalMap& saved_locals, std::size_t& failures) noexcept;
  // end_timeout_scope() closes it (owner, its timer cancelled): restores the
  // FiberLocals, drops the scope's stop source, clears the scope's bits and
  // returns the interrupt flags as they were.
  std::uint32_t end_timeout_scope(LocalMap& saved_locals, bool had_stop_source) noexcept;
  // fire_timeout_scope() is the scope's deadline (the timer's thread, any):
  // kScoped, then the current interruptible wait is ended as an interrupter
  // ends it, then the scope's stop token is requested.
  void fire_timeout_scope() noexcept;
  // mark_forked_in_scope() marks a child forked by the task of its parent's
  // timeout scope (the parent, at the fork).
  void mark_forked_in_scope() noexcept { forked_in_scope_ = true; }
  // stop_scope_children() interrupts (attributed to this fiber) and awaits,
  // masked, the live children forked while the scope was open (owner).
  void stop_scope_children() noexcept;
  // finalizer_failures() counts the finalizer failures recorded so far;
  // take_finalizer_failures() removes those past the first n, as a cause.
  std::size_t finalizer_failures() const noexcept { return finalizer_failures_.size(); }
  Cause take_finalizer_failures(std::size_t n);
  // throw_scope_interrupted() throws the scope's ScopeInterrupted (inlined,
  // like throw_interrupted()).
  [[noreturn, gnu::always_inline]] void throw_scope_interrupted() {
    throw ScopeInterrupted(take_scope_cause());
  }
  // take_scope_cause() marks the scope's request delivered and returns its
  // cause: this fiber, interrupted by itself (the timeout's caller).
  Cause take_scope_cause();
  // scope_cause() is that cause, without marking anything.
  Cause scope_cause() const;
  // scope_unwinding() is true once ScopeInterrupted was thrown in the scope.
  bool scope_unwinding() const noexcept {
    return (core_.interrupt_flags_.load(std::memory_order_relaxed) & FiberCore::kScopeDelivered) !=
           0;
  }

  // --- the run state (src/fiber/run_state.{hpp,cpp}: the only writers) ------
  // run_state() is a snapshot, for dumps, diagnostics and tests (acquire:
  // a `parked` read sees what the fiber did before parking).
  RunState run_state() const noexcept { return run_state_.load(std::memory_order_acquire); }
  // begin_run() is called by the worker `w` about to run this fiber, with
  // its preemption flag (Worker::preempt_running sets it; check_interrupt
  // reads it). `runnable` -> `running`, or ends an unstarted fiber that was
  // interrupted (DESIGN 3.2): `runnable` stays until retire().
  RunStart begin_run(Worker* w, std::atomic<bool>* preempt) noexcept;
  // on_switched_out() is called by the worker after this fiber switched
  // out, and says what to do with it: yield (`running` -> `runnable`), park
  // (`parking` -> `parked`, or `notified` -> `runnable` for a wake-up that
  // came while it was parking), exit (no change until retire()).
  AfterSwitch on_switched_out() noexcept;
  // retire() is called by the worker once the fiber's stack is released:
  // -> `done`.
  void retire() noexcept;
  Worker* worker() const noexcept { return worker_; }
  std::size_t stack_size_request() const noexcept { return stack_size_; }
  // context() is the saved execution context, stack and overflow info.
  FiberContext& context() noexcept { return context_; }

  // run_on_own_stack() runs the fiber's life on its own stack (entry point).
  void run_on_own_stack() noexcept;
  // The parker interface (WaitOwner; src/fiber/run_state.cpp).
  void note_masked_wait_end() noexcept override { core_.note_held_off(); }
  bool interrupt_pending_after_begin() const noexcept override {
    return (core_.interrupt_flags_.load(std::memory_order_seq_cst) &
            (FiberCore::kPending | FiberCore::kScoped)) != 0;
  }
  // park() suspends this fiber (`parking`, set by prepare_park()) until
  // unpark(); a deadline arms a timer on its worker that claims the wait.
  void park(std::optional<std::chrono::steady_clock::time_point> deadline, const WaitSite& site,
            std::uint64_t epoch) noexcept override;
  // unpark() makes a parked fiber runnable; called by the claim winner.
  void unpark() noexcept override;
  // take_interrupt_cause() marks the interrupt delivered (counted and traced
  // the first time) and returns its cause.
  Cause take_interrupt_cause();
  // take_interrupt_cause(scoped) is the wait's delivery: the fiber's own
  // interrupt when one is pending, else its timeout scope's (`scoped`).
  Cause take_interrupt_cause(bool& scoped) override;

  // --- children / supervision ----------------------------------------------------
  void add_child(FiberControl* child) noexcept;
  void remove_child(FiberControl* child) noexcept;
  // children_snapshot() appends a new reference to each child (each one not
  // yet done when live_only) to `out`. It allocates outside the children
  // spin lock (spin_lock.hpp: nothing that allocates or blocks under one).
  void children_snapshot(std::vector<FiberRef>& out, bool live_only);
  // uninterruptible_fork() is true when forked with ForkOptions::uninterruptible.
  bool uninterruptible_fork() const noexcept { return forked_uninterruptible_; }
  // --- what dumps and traces show (docs/debugging.md) ---------------------------
  // The owner writes these (relaxed); a dump reads a snapshot from another
  // thread that may mix two waits: a diagnostic, never dereferenced.
  // blocked_on() is the call it waits in ("Channel::receive"), or nullptr.
  const char* blocked_on() const noexcept { return wait_what_.load(std::memory_order_relaxed); }
  // blocked_object() is the primitive it waits on, or nullptr.
  const void* blocked_object() const noexcept {
    return wait_object_.load(std::memory_order_relaxed);
  }
  // parked_at() is when the current wait began (coarse_now_ns()).
  std::int64_t parked_at() const noexcept { return parked_at_.load(std::memory_order_relaxed); }
  // finalizing() is true once the body ended and the fiber is ending: its
  // callable's captures are destroyed and its children awaited.
  bool finalizing() const noexcept { return finalizing_.load(std::memory_order_relaxed); }
  // note_acquired()/note_released() track the Mutexes this fiber holds
  // (owner-only writes), so that a dump names the holder of a Mutex its
  // waiters wait on. Only the first kHeldSlots are tracked.
  static constexpr int kHeldSlots = 2;
  void note_acquired(const void* mutex) noexcept;
  void note_released(const void* mutex) noexcept;
  // held() is held-Mutex slot k (nullptr: empty).
  const void* held(int k) const noexcept { return held_[k].load(std::memory_order_relaxed); }
  // interrupters_snapshot() copies up to `max` interrupter ids to `out` and
  // returns how many interrupts were requested.
  std::size_t interrupters_snapshot(FiberId* out, std::size_t max) const;
  // root list hooks (Scheduler only)
  ListHook<FiberControl> root_hook;
  // locals() is this fiber's FiberLocal values (owner-only; src/locals/).
  LocalMap& locals() noexcept { return locals_; }

 private:
  void complete_unstarted() noexcept;
  // note_delivered() counts and traces the first delivery of an interrupt.
  void note_delivered() noexcept;
  void prepare_park() noexcept override;
  void cancel_park() noexcept override;
  // suspend() switches to the worker with `action`; returns when resumed.
  void suspend(SwitchAction action) noexcept;
  void live_and_end() noexcept;
  Cause run_and_catch() noexcept;
  void end_children() noexcept;
  void publish(const Cause& cause) noexcept;
  Cause with_finalizer_failures(Cause cause) noexcept;

  // identity and ownership
  FiberCore& core_;
  Scheduler* scheduler_;
  FiberControl* parent_;
  std::string name_;
  std::size_t stack_size_;

  // scheduling
  std::atomic<RunState> run_state_{RunState::runnable};
  Worker* worker_ = nullptr;
  SwitchAction switch_action_ = SwitchAction::none;
  bool started_ = false;
  bool forked_uninterruptible_;
  bool forked_in_scope_ = false;  // forked by a task of the parent's timeout scope
  bool interruptible_;            // owner-only mask status
  std::uint32_t guard_depth_ = 0;
  // The current wait and held Mutexes (see blocked_on()).
  std::atomic<const char*> wait_what_{nullptr};
  std::atomic<const void*> wait_object_{nullptr};
  std::atomic<std::int64_t> parked_at_{0};
  std::atomic<const void*> held_[kHeldSlots] = {};
  std::atomic<bool> finalizing_{false};

  // interruption
  mutable SpinLock interrupt_lock_;
  std::vector<FiberId> interruptors_ WEFT_GUARDED_BY(interrupt_lock_);
  std::unique_ptr<std::stop_source> stop_source_ WEFT_GUARDED_BY(interrupt_lock_);
  // The open timeout scope's stop source (none until the task asks for a
  // token): requested by its deadline and by any interrupt of the fiber.
  std::stop_source scope_stop_ WEFT_GUARDED_BY(interrupt_lock_){std::nostopstate};
  TimeoutScope* timeout_scope_ = nullptr;               // owner-only
  std::vector<std::exception_ptr> finalizer_failures_;  // owner-only
  // The leaf rethrow_cause() last rethrew here (src/exit/rethrown.hpp); owner-only.
  Cause rethrown_;

  // completion
  SyncQueue joiners_;

  // children (intrusive list guarded by children_lock_)
  SpinLock children_lock_;
  ListHook<FiberControl> sibling_hook_;
  IntrusiveList<FiberControl, &FiberControl::sibling_hook_> children_
      WEFT_GUARDED_BY(children_lock_);

  FiberContext context_;

  // FiberLocal values; released at the fiber's end, after its finalizers.
  LocalMap locals_;
};

// site_of() names f in its causes: pretty() says which fiber failed or was interrupted.
Cause::Site site_of(const FiberControl& f);

// coarse_now_ns() is CLOCK_MONOTONIC_COARSE in nanoseconds: a few ns to
// read, a few ms of resolution; how long a dumped fiber has waited.
std::int64_t coarse_now_ns() noexcept;

// note_mutex_held() records that the current fiber took (true) or released
// (false) `mutex`; nothing on a plain thread.
void note_mutex_held(const void* mutex, bool held) noexcept;

// control() is f's private part.
inline FiberControl& control(FiberCore& f) noexcept {
  return *std::launder(reinterpret_cast<FiberControl*>(f.control_));
}
inline const FiberControl& control(const FiberCore& f) noexcept {
  return *std::launder(reinterpret_cast<const FiberControl*>(f.control_));
}

}  // namespace weft::detail
