// FiberControl: everything a fiber is besides its narrow public handle
// (FiberCore, include/weft/detail/fiber_core.hpp): the run state and its
// transitions, the worker and stack it runs on, the interruption records and
// mask status, the joiners, the children and the list links. It lives inside
// the FiberCore's opaque storage, is built and destroyed with it, and is seen
// only by src/. What few fibers use (a name, the interruptors, a stop_token,
// finalizer failures, the rethrown leaf) lives in a FiberExtras side
// allocation made on first use. The state machine and the layout are written
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

#include <unwind.h>

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

// kHeldMutexSlots is how many held Mutexes a fiber tracks for dumps.
inline constexpr int kHeldMutexSlots = 2;

// FiberExtras is the rarely used part of a fiber, allocated on first use by
// FiberControl::extras() (a name at fork, an interrupt request, a stop_token,
// a finalizer failure, a rethrown leaf, a Mutex lock, a FiberLocal value)
// and freed with the control block.
// Installed by a CAS (the owner and an interrupter on another thread may race
// to create it): whoever loses deletes its copy. Never moved or freed before
// the control block, so a pointer read with acquire stays valid as long as
// the reader holds a reference to the fiber.
struct FiberExtras {
  std::string name;  // immutable once the fiber is started
  // interruption records (any thread)
  mutable SpinLock interrupt_lock;
  std::vector<FiberId> interruptors WEFT_GUARDED_BY(interrupt_lock);
  std::unique_ptr<std::stop_source> stop_source WEFT_GUARDED_BY(interrupt_lock);
  std::vector<std::exception_ptr> finalizer_failures;  // owner-only
  // The leaf rethrow_cause() last rethrew here (src/exit/rethrown.hpp); owner-only.
  Cause rethrown;
  // The Mutexes the fiber holds (FiberControl::note_acquired; owner writes,
  // dumps read relaxed from other threads: a diagnostic).
  std::atomic<const void*> held[kHeldMutexSlots] = {};
  // FiberLocal values (owner-only; src/locals/); released at the fiber's
  // end, after its finalizers.
  LocalMap locals;
  // The open timeout scope's stop source (none until its task asks for a
  // token): requested by its deadline and by any interrupt of the fiber.
  std::stop_source scope_stop WEFT_GUARDED_BY(interrupt_lock){std::nostopstate};
  // The exception object of an interrupt delivered by phase 2 alone
  // (src/fiber/interrupt_unwind.cpp), and whether it is in flight; owner-only.
  _Unwind_Exception unwind_exception{};
  bool unwinding = false;
  bool unwinding_scope = false;  // it is the open stack scope's, ending in its frame
};

// FiberControl is the src-private part of one fiber (see the file comment).
class FiberControl final : public WaitOwner {
 public:
  FiberControl(FiberCore& core, Scheduler& scheduler, FiberCore* parent,
               const ForkOptions& options);
  FiberControl(const FiberControl&) = delete;
  FiberControl& operator=(const FiberControl&) = delete;
  ~FiberControl();

  // The offset of FiberCore::control_, where this object lives. FiberCore is
  // not standard-layout (virtual), so offsetof is conditionally supported:
  // g++ and clang give the layout offset (the silenced warning says so).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
  static constexpr std::size_t kControlOffset = offsetof(FiberCore, control_);
#pragma GCC diagnostic pop
  // core() is the public handle this part belongs to (retain/release, id,
  // done): this object lives at a fixed offset in it (FiberCore::control_).
  FiberCore& core() const noexcept {
    return *std::launder(reinterpret_cast<FiberCore*>(
        const_cast<char*>(reinterpret_cast<const char*>(this)) - kControlOffset));
  }
  FiberId id() const noexcept { return core().id(); }
  // name() is the name given at fork ("" when none).
  const std::string& name() const noexcept;
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
  bool interrupt_pending() const noexcept { return core().interrupt_pending(); }
  // interrupting() is true once Interrupted was thrown in this fiber.
  bool interrupting() const noexcept {
    return (core().interrupt_flags_.load(std::memory_order_relaxed) & FiberCore::kDelivered) != 0;
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
  // guard_depth() is the guards' nesting depth (mod 2^16: a wrap keeps the
  // out-of-order check of MaskGuard exact for every depth that fits a stack).
  std::uint16_t& guard_depth() noexcept { return guard_depth_; }
  // add_finalizer_failure() records an exception thrown by a finalizer while
  // unwinding; it is added to the Exit's cause after the original.
  void add_finalizer_failure(std::exception_ptr e);
  // rethrown() is the slot of src/exit/rethrown.hpp (owner-only; makes the
  // extras), rethrown_if_any() the slot or nullptr when never written.
  Cause& rethrown() { return extras().rethrown; }
  const Cause* rethrown_if_any() const noexcept {
    const FiberExtras* x = extras_if_any();
    return x != nullptr ? &x->rethrown : nullptr;
  }
  // yield() switches to the worker, which requeues this fiber (owner-only).
  void yield() noexcept { suspend(SwitchAction::yield); }

  // --- the stack scope (include/weft/detail/timeout_scope.hpp) -----------------
  // A timeout's task or a race's contestant 0 run on this fiber's own stack
  // (StackScope: TimeoutScope, RaceScope); "deadline" below is also a
  // sibling contestant's win.
  // scope_open() is true while a StackScope is open on this fiber (owner).
  bool scope_open() const noexcept { return scope_open_; }
  // begin_timeout_scope() opens one (owner): saves the FiberLocals to
  // restore and the count of finalizer failures recorded so far.
  void begin_timeout_scope(LocalMap& saved_locals, std::size_t& failures) noexcept;
  // end_timeout_scope() closes it (owner, its timer cancelled): interrupts
  // and awaits, masked, the live children forked in it, drops its stop
  // source, restores the FiberLocals, clears the scope's bits and returns
  // the interrupt flags as they were.
  std::uint32_t end_timeout_scope(LocalMap& saved_locals) noexcept;
  // fire_timeout_scope() is the scope's deadline (the timer's or the winning
  // sibling's thread, any):
  // kScoped, then the current interruptible wait is ended as an interrupter
  // ends it, then the scope's stop token is requested.
  void fire_timeout_scope() noexcept;
  // note_fork() marks `child`, just forked by this fiber (owner), when a
  // scope is open: the scope ends it, as a forked task's end would.
  void note_fork(FiberControl& child) noexcept {
    if (!scope_open_) return;
    child.forked_in_scope_ = true;  // before it is scheduled: ours until then
    scope_forked_ = true;
  }
  // finalizer_failures() counts the finalizer failures recorded so far;
  // take_finalizer_failures() removes those past the first n and returns
  // `cause` followed by them (Sequential), each a failure "in finalizer".
  std::size_t finalizer_failures() const noexcept {
    const FiberExtras* x = extras_if_any();
    return x != nullptr ? x->finalizer_failures.size() : 0;
  }
  Cause take_finalizer_failures(std::size_t n, Cause cause = {});
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
    return (core().interrupt_flags_.load(std::memory_order_relaxed) & FiberCore::kScopeDelivered) !=
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
  // begin_run_direct() is begin_run() on another fiber's stack (a direct
  // switch): a fiber that would end unstarted is left as it is, and
  // RunStart::ended_unstarted tells the worker to end it from its loop.
  RunStart begin_run_direct(Worker* w, std::atomic<bool>* preempt) noexcept;
  // on_switched_out() is called by the worker after this fiber switched
  // out, and says what to do with it: yield (`running` -> `runnable`), park
  // (`parking` -> `parked`, or `notified` -> `runnable` for a wake-up that
  // came while it was parking), exit (no change until retire()).
  AfterSwitch on_switched_out() noexcept;
  // retire() is called by the worker once the fiber's stack is released:
  // -> `done`.
  void retire() noexcept;
  Worker* worker() const noexcept { return worker_; }
  // stack_size_request() is the stack size asked at fork; only until the
  // first run, which replaces it with the stack itself (context().stack).
  std::size_t stack_size_request() const noexcept { return context_.stack.size; }
  // context() is the saved execution context, stack and overflow info.
  FiberContext& context() noexcept { return context_; }

  // run_on_own_stack() runs the fiber's life on its own stack (entry point).
  void run_on_own_stack() noexcept;
  // The parker interface (WaitOwner; src/fiber/run_state.cpp).
  void note_masked_wait_end() noexcept override { core().note_held_off(); }
  bool interrupt_pending_after_begin() const noexcept override {
    return (core().interrupt_flags_.load(std::memory_order_seq_cst) &
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
  // interrupt_scoped() and take_wait_cause() are the wait's delivery: the
  // fiber's own interrupt when one is pending, else its timeout scope's.
  bool interrupt_scoped() const noexcept override;
  Cause take_wait_cause(bool scoped) override;
  // unwind_interrupted(): see WaitOwner. Built with a frame pointer (it reads
  // its caller's frame from it) and never noexcept: the unwind starts here.
  [[gnu::noinline]] void unwind_interrupted(bool scoped) override;
  // enter_body() calls f.run_body(out) in a frame of its own: the walk of
  // unwind_interrupted() knows the body's frame as the one it returns to.
  // noclone: GCC's IPA may clone it (a .constprop copy at another address);
  // clang has no such attribute (and -Wunknown-attributes is an error here).
#if defined(__clang__)
  [[gnu::noinline]] static void enter_body(FiberCore& f, Cause& out) noexcept;
#else
  [[gnu::noinline, gnu::noclone]] static void enter_body(FiberCore& f, Cause& out) noexcept;
#endif
  // end_unwind() is FiberCore::body_failed()'s first step: true when the
  // exception was this fiber's interrupt delivered by phase 2 alone (`out`
  // is its cause), false for anything else.
  bool end_unwind(Cause& out) noexcept;
  // end_scope_unwind() is the same for the stack scope's catch (...): true
  // when the exception is the scope's fire delivered by phase 2 alone.
  bool end_scope_unwind() noexcept;

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
  static constexpr int kHeldSlots = kHeldMutexSlots;
  void note_acquired(const void* mutex) noexcept;
  void note_released(const void* mutex) noexcept;
  // held() is held-Mutex slot k (nullptr: empty).
  const void* held(int k) const noexcept {
    const FiberExtras* x = extras_if_any();
    return x != nullptr ? x->held[k].load(std::memory_order_relaxed) : nullptr;
  }
  // interrupters_snapshot() copies up to `max` interrupter ids to `out` and
  // returns how many interrupts were requested.
  std::size_t interrupters_snapshot(FiberId* out, std::size_t max) const;
  // tree_hook links a root into the Scheduler's root list, or a fork child
  // into its parent's children_: a fiber is in exactly one of the two.
  ListHook<FiberControl> tree_hook;
  // locals() is this fiber's FiberLocal values (owner-only; src/locals/;
  // makes the extras), locals_if_any() them or nullptr when none was set.
  LocalMap& locals() { return extras().locals; }
  const LocalMap* locals_if_any() const noexcept {
    const FiberExtras* x = extras_if_any();
    return x != nullptr ? &x->locals : nullptr;
  }

 private:
  void complete_unstarted() noexcept;
  // note_delivered() counts and traces the first delivery of an interrupt.
  void note_delivered() noexcept;
  // mark_delivered() sets `bit` (kDelivered or kScopeDelivered) and notes the
  // first delivery. Relaxed: only the fiber itself sets these bits; the
  // flags' order is given by kPending's seq_cst accesses.
  void mark_delivered(std::uint32_t bit) noexcept {
    const std::uint32_t before = core().interrupt_flags_.fetch_or(bit, std::memory_order_relaxed);
    if ((before & bit) == 0) note_delivered();
  }
  void prepare_park() noexcept override;
  void cancel_park() noexcept override;
  // suspend() switches out with `action`: straight to the next fiber of its
  // worker when there is one (Worker::pick_direct), else to the worker loop;
  // returns when resumed.
  void suspend(SwitchAction action) noexcept;
  void live_and_end() noexcept;
  Cause run_and_catch() noexcept;
  void end_children() noexcept;
  // stop_scope_children() interrupts (attributed to this fiber) and awaits,
  // masked, the live children forked while the timeout scope was open.
  void stop_scope_children() noexcept;
  void publish(const Cause& cause) noexcept;
  // extras() is the side allocation, made on first use (any thread; see
  // FiberExtras); extras_if_any() is it or nullptr, without making it.
  FiberExtras& extras();
  // extras_nothrow() is extras(), or nullptr when the allocation fails.
  FiberExtras* extras_nothrow() noexcept;
  FiberExtras* extras_if_any() const noexcept { return extras_.load(std::memory_order_acquire); }

  // Field order packs the one-byte fields together (sizeof is static_assert'ed
  // in fiber_core.cpp; docs/internals.md has the layout).
  // identity and ownership (core() is computed: a fixed offset)
  Scheduler* scheduler_;
  FiberControl* parent_;
  Worker* worker_ = nullptr;  // scheduling
  std::atomic<FiberExtras*> extras_{nullptr};

  // Eight bytes: the one-byte fields, three owner-only bits, the guard depth.
  std::atomic<RunState> run_state_{RunState::runnable};
  std::atomic<bool> finalizing_{false};
  // children (intrusive list guarded by children_lock_)
  SpinLock children_lock_;
  SwitchAction switch_action_ = SwitchAction::none;  // owner-only
  // Owner-only bits (one memory location: only the fiber itself, or its
  // worker while it does not run, touches them).
  bool started_ : 1 = false;
  bool forked_uninterruptible_ : 1;
  bool interruptible_ : 1;  // the mask status
  // The timeout scope (owner-only bits): open, a child forked in it, a stop
  // token taken in it.
  bool scope_open_ : 1 = false;
  bool scope_forked_ : 1 = false;
  bool scope_stop_made_ : 1 = false;
  // Forked by the task of its parent's timeout scope: written by the parent
  // before the fiber is scheduled, read by the parent (its own byte: the
  // bits above are this fiber's).
  bool forked_in_scope_ = false;
  std::uint16_t guard_depth_ = 0;

  // The current wait (see blocked_on()); the held Mutexes are in the extras.
  std::atomic<const char*> wait_what_{nullptr};
  std::atomic<const void*> wait_object_{nullptr};
  std::atomic<std::int64_t> parked_at_{0};

  // completion
  SyncQueue joiners_;

  IntrusiveList<FiberControl, &FiberControl::tree_hook> children_ WEFT_GUARDED_BY(children_lock_);

  FiberContext context_;
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
