// FiberCore: the type-erased fiber control block that the public templates
// (Fiber<T>, fork, Scope) build on. Users never name it. The state machine is
// written down in docs/internals.md.
#pragma once

#include <weft/cause.hpp>
#include <weft/detail/assert.hpp>
#include <weft/detail/intrusive_list.hpp>
#include <weft/detail/spin_lock.hpp>
#include <weft/detail/sync_queue.hpp>
#include <weft/detail/wait_queue.hpp>
#include <weft/exit.hpp>
#include <weft/fiber_id.hpp>
#include <weft/interrupted.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace weft {
struct ForkOptions;
}

namespace weft::detail {

class Scheduler;
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

// RunStart is what FiberCore::begin_run() found.
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

// FiberCore is one fiber's control block (refcounted, type-erased).
class FiberCore : public WaitOwner {
 public:
  FiberCore(Scheduler& scheduler, FiberCore* parent, const ForkOptions& options);
  FiberCore(const FiberCore&) = delete;
  FiberCore& operator=(const FiberCore&) = delete;
  virtual ~FiberCore();

  // id() is this fiber's id.
  FiberId id() const noexcept { return id_; }
  // name() is the name given at fork ("" when none).
  const std::string& name() const noexcept { return name_; }
  // scheduler() is the runtime this fiber belongs to.
  Scheduler& scheduler() const noexcept { return *scheduler_; }
  // parent() is the fork parent, nullptr for roots and daemons.
  FiberCore* parent() const noexcept { return parent_; }

  // retain()/release() share ownership (handles, the runtime, a parent).
  void retain() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept;

  // done() is true once the Exit is published (acquire: the Exit is visible).
  bool done() const noexcept { return done_.load(std::memory_order_acquire); }
  // await_done() waits for the end: an interruptible yield point in a fiber,
  // a blocking call on a plain thread. Throws Interrupted if interrupted.
  void await_done();
  // await_done_until() is await_done() with a deadline (time_point::max(): none);
  // false if it passed first.
  bool await_done_until(std::chrono::steady_clock::time_point deadline);
  // await_done_masked() waits for the end without being interruptible.
  void await_done_masked() noexcept;
  // await_done_masked_until() is await_done_masked() with a deadline; false if it passed first.
  bool await_done_masked_until(std::chrono::steady_clock::time_point deadline) noexcept;

  // request_interrupt() records an interrupt by `by` and wakes the fiber if it
  // is parked interruptibly. Any thread.
  void request_interrupt(FiberId by);
  // interrupt_pending() is true once any interrupt was requested (sticky).
  bool interrupt_pending() const noexcept {
    return (interrupt_flags_.load(std::memory_order_relaxed) & kPending) != 0;
  }
  // interrupting() is true once Interrupted was thrown in this fiber.
  bool interrupting() const noexcept {
    return (interrupt_flags_.load(std::memory_order_relaxed) & kDelivered) != 0;
  }
  // interrupt_cause() is the Parallel cause of every recorded interruptor.
  Cause interrupt_cause() const;
  // stop_token() is a token requested when this fiber is interrupted.
  std::stop_token stop_token();

  // --- owner-only (the fiber itself) ---------------------------------------
  // interruptible_now() is true when a pending interrupt may be thrown here.
  bool interruptible_now() const noexcept override;
  // throw_if_interrupted() is the delivery check of every yield point.
  void throw_if_interrupted() {
    if (interrupt_pending()) [[unlikely]]
      deliver_interrupt();
  }
  // check_interrupt() is this_fiber::check_interrupt(): two loads and a
  // branch; the slow path yields first when the monitor asked this fiber's
  // worker to make room (DESIGN 3.14), then delivers a pending interrupt.
  void check_interrupt() {
    if (interrupt_pending() || preempt_->load(std::memory_order_relaxed)) [[unlikely]]
      check_interrupt_slow();
  }
  // throw_interrupted() marks the fiber interrupting and throws Interrupted.
  // Always inlined: every frame between a throw and its catch costs the
  // unwinder a lookup and a CFI walk in both phases (docs/performance.md).
  [[noreturn, gnu::always_inline]] void throw_interrupted() {
    throw Interrupted(FiberCore::take_interrupt_cause());  // not virtual: we know the type
  }
  // mask state, used by the Uninterruptible/Interruptible guards.
  bool mask_status() const noexcept { return interruptible_; }
  void set_mask_status(bool interruptible) noexcept { interruptible_ = interruptible; }
  std::uint32_t& guard_depth() noexcept { return guard_depth_; }
  // add_finalizer_failure() records an exception thrown by a finalizer while
  // unwinding; it is added to the Exit's cause after the original.
  void add_finalizer_failure(std::exception_ptr e);
  // yield() switches to the worker, which requeues this fiber (owner-only).
  void yield() noexcept { suspend(SwitchAction::yield); }

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
  // storage for the private execution context and stack (src/context).
  void* context_storage() noexcept { return context_storage_; }
  static constexpr std::size_t kContextStorage = 160;

  // start_on_worker() runs the fiber's life on its own stack (entry point).
  void run_on_own_stack() noexcept;
  // The parker interface (WaitOwner; src/fiber/run_state.cpp).
  bool interrupt_pending_after_begin() const noexcept override {
    return (interrupt_flags_.load(std::memory_order_seq_cst) & kPending) != 0;
  }
  // park() suspends this fiber (`parking`, set by prepare_park()) until
  // unpark(); a deadline arms a timer on its worker that claims the wait.
  void park(std::optional<std::chrono::steady_clock::time_point> deadline, const char* what,
            std::uint64_t epoch) noexcept override;
  // unpark() makes a parked fiber runnable; called by the claim winner.
  void unpark() noexcept override;
  Cause take_interrupt_cause() override {
    interrupt_flags_.fetch_or(kDelivered, std::memory_order_relaxed);
    return interrupt_cause();
  }

  // children / supervision
  void add_child(FiberCore* child) noexcept;
  void remove_child(FiberCore* child) noexcept;
  // children_snapshot() appends a new reference to each child (each one not
  // yet done when live_only) to `out`. It allocates outside the children
  // spin lock (spin_lock.hpp: nothing that allocates or blocks under one).
  void children_snapshot(std::vector<FiberRef>& out, bool live_only);
  // uninterruptible_fork() is true when forked with ForkOptions::uninterruptible.
  bool uninterruptible_fork() const noexcept { return forked_uninterruptible_; }
  // debug info for dumps
  // (relaxed: dumps read it from other threads; only a diagnostic)
  const char* blocked_on() const noexcept { return blocked_on_.load(std::memory_order_relaxed); }
  void set_blocked_on(const char* what) noexcept {
    blocked_on_.store(what, std::memory_order_relaxed);
  }
  // root list hooks (Scheduler only)
  ListHook<FiberCore> root_hook;

 protected:
  // run_body() invokes the callable and stores its value.
  virtual void run_body() = 0;
  // destroy_callable() destroys the callable (its captures are finalizers too).
  virtual void destroy_callable() noexcept = 0;
  // exit_cause() is the published Exit's cause (only after done()).
 public:
  virtual Cause exit_cause() const = 0;

 protected:
  // store_exit() builds the Exit from the stored value (empty cause) or the cause.
  virtual void store_exit(const Cause& cause) noexcept = 0;

 private:
  static constexpr std::uint32_t kPending = 1;    // a request was recorded (sticky)
  static constexpr std::uint32_t kDelivered = 2;  // Interrupted was thrown at least once

  void deliver_interrupt();
  void check_interrupt_slow();
  void complete_unstarted() noexcept;
  // wait_end() parks on the joiners until the end or `deadline`; true once done.
  bool wait_end(std::chrono::steady_clock::time_point deadline, bool interruptible);
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
  FiberId id_;
  std::atomic<std::uint32_t> refs_{1};
  Scheduler* scheduler_;
  FiberCore* parent_;
  std::string name_;
  std::size_t stack_size_;

  // scheduling
  std::atomic<RunState> run_state_{RunState::runnable};
  Worker* worker_ = nullptr;
  std::atomic<bool>* preempt_ = &kNoPreempt;
  static std::atomic<bool> kNoPreempt;  // a flag never set: before the first run
  SwitchAction switch_action_ = SwitchAction::none;
  bool started_ = false;
  bool forked_uninterruptible_;
  bool interruptible_;  // owner-only mask status
  std::uint32_t guard_depth_ = 0;
  std::atomic<const char*> blocked_on_{nullptr};

  // interruption
  std::atomic<std::uint32_t> interrupt_flags_{0};
  mutable SpinLock interrupt_lock_;
  std::vector<FiberId> interruptors_ WEFT_GUARDED_BY(interrupt_lock_);
  std::unique_ptr<std::stop_source> stop_source_ WEFT_GUARDED_BY(interrupt_lock_);
  std::vector<std::exception_ptr> finalizer_failures_;  // owner-only

  // completion
  std::atomic<bool> done_{false};
  SyncQueue joiners_;

  // children (intrusive list guarded by children_lock_)
  SpinLock children_lock_;
  ListHook<FiberCore> sibling_hook_;
  IntrusiveList<FiberCore, &FiberCore::sibling_hook_> children_ WEFT_GUARDED_BY(children_lock_);

  alignas(16) unsigned char context_storage_[kContextStorage];
};

// FiberRef is an owning pointer to a FiberCore (retain/release).
class FiberRef {
 public:
  FiberRef() noexcept = default;
  // adopt: takes over one reference.
  explicit FiberRef(FiberCore* c) noexcept : core_(c) {}
  FiberRef(const FiberRef& o) noexcept : core_(o.core_) {
    if (core_) core_->retain();
  }
  FiberRef(FiberRef&& o) noexcept : core_(std::exchange(o.core_, nullptr)) {}
  FiberRef& operator=(FiberRef o) noexcept {
    std::swap(core_, o.core_);
    return *this;
  }
  ~FiberRef() {
    if (core_) core_->release();
  }
  FiberCore* get() const noexcept { return core_; }
  FiberCore* operator->() const noexcept { return core_; }
  explicit operator bool() const noexcept { return core_ != nullptr; }

 private:
  FiberCore* core_ = nullptr;
};

// FiberState<T> holds the value and the published Exit of a fiber returning T.
template <class T>
class FiberState : public FiberCore {
 public:
  using FiberCore::FiberCore;
  // exit() is the published Exit; only after done().
  Exit<T>& exit() noexcept { return *exit_; }
  Cause exit_cause() const override { return exit_->cause(); }
  // take_exit() moves a move-only Exit out; a second take throws.
  Exit<T> take_exit() {
    std::lock_guard lk(take_lock_);
    if (taken_)
      throw std::logic_error(fmt::format(
          "weft::Fiber: the move-only result of fiber {} was already taken", this->id()));
    taken_ = true;
    return std::move(*exit_);
  }

 protected:
  using Value = std::conditional_t<std::is_void_v<T>, std::monostate, T>;
  void store_exit(const Cause& cause) noexcept override {
    if (cause.empty()) {
      if constexpr (std::is_void_v<T>) {
        exit_.emplace(Exit<T>::success());
      } else {
        exit_.emplace(Exit<T>::success(std::move(*value_)));
      }
    } else {
      exit_.emplace(Exit<T>::failure(cause));
    }
    value_.reset();
  }
  std::optional<Value> value_;
  std::optional<Exit<T>> exit_;
  SpinLock take_lock_;
  bool taken_ WEFT_GUARDED_BY(take_lock_) = false;
};

// take_move_only_exit() hands the Exit of a move-only result to one awaiter.
template <class T>
Exit<T> take_move_only_exit(FiberState<T>& s) {
  return s.take_exit();
}

// FiberTask<T, F> runs a callable F returning T.
template <class T, class F>
class FiberTask final : public FiberState<T> {
 public:
  template <class G>
  FiberTask(Scheduler& s, FiberCore* parent, const ForkOptions& o, G&& g)
      : FiberState<T>(s, parent, o), fn_(std::forward<G>(g)) {}

 private:
  void run_body() override {
    if constexpr (std::is_void_v<T>) {
      std::invoke(*fn_);
      this->value_.emplace();
    } else {
      this->value_.emplace(std::invoke(*fn_));
    }
  }
  void destroy_callable() noexcept override { fn_.reset(); }
  std::optional<F> fn_;
};

// live_fiber_objects() counts FiberCore objects alive in the process (debug
// builds only; 0 otherwise). Tests use it to detect leaked handles.
std::int64_t live_fiber_objects() noexcept;

// current_fiber() is the fiber running on this thread, or nullptr.
FiberCore* current_fiber() noexcept;

// current_scheduler() is the scheduler of the current fiber, or nullptr.
Scheduler* current_scheduler() noexcept;
// require_scheduler() is current_scheduler() or throws std::logic_error naming `what`.
Scheduler& require_scheduler(const char* what);
// start_fiber() registers a new fiber (as child of `parent` or as a root) and
// schedules it. Takes over one reference for the runtime.
void start_fiber(FiberCore* fiber, bool root);
// check_stack_size() throws std::invalid_argument for sizes below the minimum.
void check_stack_size(std::size_t size, const char* what);
// new_fiber_id() allocates a process-unique id.
FiberId new_fiber_id() noexcept;
// current_id() is the current fiber's id, or this plain thread's id.
FiberId current_id() noexcept;
// interrupt_self_and_check() follows a fiber's Fiber::interrupt() on itself:
// throws Interrupted when interruptible, else std::logic_error (it would wait
// for itself forever).
void interrupt_self_and_check(FiberCore& self);

}  // namespace weft::detail
