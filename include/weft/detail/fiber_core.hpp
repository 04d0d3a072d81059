// FiberCore: the narrow, type-erased handle of a fiber that the public
// templates (Fiber<T>, fork, Scope, the combinators) build on: its reference
// count, id, end, await, interrupt request and exit slot. Users never name
// it. Everything else a fiber is (run state, scheduling, interruption
// records, children, stack) is the src-private FiberControl kept in opaque
// storage here (src/fiber/fiber_control.hpp); the state machine is written
// down in docs/internals.md.
#pragma once

#include <weft/cause.hpp>
#include <weft/detail/assert.hpp>
#include <weft/detail/spin_lock.hpp>
#include <weft/exit.hpp>
#include <weft/fiber_id.hpp>
#include <weft/interrupted.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <variant>
#include <weft/source_location.hpp>

namespace weft {
struct ForkOptions;
}

namespace weft::detail {

class Scheduler;
class FiberControl;
class StackScope;

// BodyMark is never thrown. FiberTask::run_body()'s middle handler, `catch
// (const BodyMark&)`, gives the body's try a handler chain that no code
// inlined into the same frame has (acquire_release's try has the other two
// alone), so the walk of RuntimeOptions::interrupt_unwind tells the body's
// own call site apart by its types (src/unwind/frame_rule.hpp).
struct BodyMark {};

// FiberCore is one fiber's handle (refcounted, type-erased).
class FiberCore {
 public:
  FiberCore(const FiberCore&) = delete;
  FiberCore& operator=(const FiberCore&) = delete;

  // id() is this fiber's id.
  FiberId id() const noexcept { return id_; }

  // retain()/release() share ownership (handles, the runtime, a parent).
  void retain() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept;
  // release_unless_last() is release() when another reference remains (true);
  // false, changing nothing, when the caller's is the last.
  bool release_unless_last() noexcept;
  // ref_count() is a snapshot of the reference count (tests, diagnostics).
  std::uint32_t ref_count() const noexcept { return refs_.load(std::memory_order_relaxed); }

  // done() is true once the Exit is published (acquire: the Exit is visible).
  bool done() const noexcept { return done_.load(std::memory_order_acquire); }
  // await_done() waits for the end: an interruptible yield point in a fiber,
  // a blocking call on a plain thread. Throws Interrupted if interrupted.
  // `where` and `what` are the caller's call site and call, for dumps.
  void await_done(weft::source_location where = {}, const char* what = "Fiber::await");
  // await_done_until() is await_done() with a deadline (time_point::max(): none);
  // false if it passed first.
  bool await_done_until(std::chrono::steady_clock::time_point deadline,
                        weft::source_location where = {}, const char* what = "Fiber::await");

  // request_interrupt() records an interrupt by `by` and wakes the fiber if it
  // is parked interruptibly. Any thread.
  void request_interrupt(FiberId by);
  // interrupt_pending() is true once any interrupt was requested (sticky).
  bool interrupt_pending() const noexcept {
    return (interrupt_flags_.load(std::memory_order_relaxed) & kPending) != 0;
  }

  // --- owner-only (the fiber itself) ---------------------------------------
  // throw_if_interrupted() is the delivery check of every yield point.
  // interrupt_held_off() says a request met a mask here (kHeldOff).
  bool interrupt_held_off() const noexcept {
    return (interrupt_flags_.load(std::memory_order_acquire) & kHeldOff) != 0;
  }
  // note_held_off() records that a pending request met a mask (owner): the
  // fiber's own (kHeldOff) and its timeout scope's (kScopeHeldOff).
  void note_held_off() noexcept {
    const std::uint32_t f = interrupt_flags_.load(std::memory_order_relaxed);
    const std::uint32_t held =
        ((f & kPending) != 0 ? kHeldOff : 0u) | ((f & kScoped) != 0 ? kScopeHeldOff : 0u);
    if (held != 0) interrupt_flags_.fetch_or(held, std::memory_order_release);
  }
  // any_interrupt_pending() is interrupt_pending(), or the deadline of the
  // timeout running on this fiber's own stack has passed (kScoped): what a
  // yield point checks.
  bool any_interrupt_pending() const noexcept {
    return (interrupt_flags_.load(std::memory_order_relaxed) & (kPending | kScoped)) != 0;
  }

  // note_site() records the call site of the yield point or blocking call
  // the fiber is in (owner; a relaxed pointer store). Dumps show it, and the
  // stall detector names it as the last yield point of a fiber that stalls.
  void note_site(weft::source_location where) noexcept { store_site(site_, where); }
  // site() is the last recorded call site (any thread; a snapshot).
  weft::source_location site() const noexcept { return load_site(site_); }

  void throw_if_interrupted() {
    if (any_interrupt_pending()) [[unlikely]]
      deliver_interrupt();
  }
  // check_interrupt() is this_fiber::check_interrupt(): two loads and a
  // branch; the slow path yields first when the monitor asked this fiber's
  // worker to make room (DESIGN 3.14), then delivers a pending interrupt.
  void check_interrupt(weft::source_location where) {
    note_site(where);
    if (any_interrupt_pending() || preempt_->load(std::memory_order_relaxed)) [[unlikely]]
      check_interrupt_slow();
  }

  // exit_cause() is the published Exit's cause (only after done()).
  virtual Cause exit_cause() const = 0;

  // Bytes of the src-private part (static_assert'ed there; docs/internals.md
  // has its layout).
  static constexpr std::size_t kControlStorage = 256;

  // Control blocks (every FiberTask) come from per-thread caches of the
  // common sizes (src/context/block_pool.hpp): `delete this` in release()
  // passes the dynamic size. Over-aligned tasks (a capture with
  // alignas(> 16)) use the global allocator.
  static void* operator new(std::size_t size);
  static void operator delete(void* p, std::size_t size) noexcept;
  static void* operator new(std::size_t size, std::align_val_t align) {
    return ::operator new(size, align);
  }
  static void operator delete(void* p, std::size_t, std::align_val_t align) noexcept {
    ::operator delete(p, align);  // unsized: clang enables sized deallocation only on request
  }

 protected:
  FiberCore(Scheduler& scheduler, FiberCore* parent, const ForkOptions& options);
  virtual ~FiberCore();
  // run_body() invokes the callable and stores its value, or records in `out`
  // why it did not: an escaping exception is caught right there, in the
  // body's own frame, not in a runtime frame further up, because each frame
  // between a throw and its catch costs the unwinder a lookup in both phases
  // (docs/performance.md, "Interruption: frames of our own").
  virtual void run_body(Cause& out) noexcept = 0;
  // body_interrupted() and body_failed() are run_body()'s two handlers: the
  // body ended by an Interrupted (`e`), or by any other exception (current),
  // which includes this fiber's interrupt delivered by the unwinder's phase 2
  // alone (RuntimeOptions::interrupt_unwind: a foreign forced unwind, which
  // only `catch (...)` may catch without binding a null reference).
  void body_interrupted(const Interrupted& e, Cause& out) noexcept;
  void body_failed(Cause& out) noexcept;
  // destroy_callable() destroys the callable (its captures are finalizers too).
  virtual void destroy_callable() noexcept = 0;
  // store_exit() builds the Exit from the stored value (empty cause) or the cause.
  virtual void store_exit(const Cause& cause) noexcept = 0;

 private:
  friend class FiberControl;
  friend class StackScope;
  friend FiberControl& control(FiberCore& f) noexcept;
  friend const FiberControl& control(const FiberCore& f) noexcept;
  static constexpr std::uint32_t kPending = 1;    // a request was recorded (sticky)
  static constexpr std::uint32_t kDelivered = 2;  // Interrupted was thrown at least once
  // kHeldOff: a pending request met a mask (a masked yield point or wait, or
  // a mask that closed with it pending): the fiber was uninterruptible when
  // interrupted. timeout() then discards a value the task still returns
  // (DESIGN 3.10); a task that simply finished before its next yield point
  // keeps its value (3.13: a read that won the race is never lost).
  static constexpr std::uint32_t kHeldOff = 4;
  // The timeout scope's bits (TimeoutScope, include/weft/detail/timeout_scope.hpp:
  // a timeout whose task runs on this fiber's own stack). Unlike kPending they
  // are cleared when the scope ends. kScoped: its deadline passed (set by the
  // timer, any thread, seq_cst like kPending); kScopeHeldOff: that request met
  // a mask; kScopeDelivered: ScopeInterrupted was thrown (the fiber unwinds
  // the task, for unwinding_cause()).
  static constexpr std::uint32_t kScoped = 8;
  static constexpr std::uint32_t kScopeHeldOff = 16;
  static constexpr std::uint32_t kScopeDelivered = 32;

  void deliver_interrupt();
  void check_interrupt_slow();

  FiberId id_;
  std::atomic<std::uint32_t> refs_{1};
  std::atomic<bool> done_{false};
  std::atomic<std::uint32_t> interrupt_flags_{0};
  // The running worker's preemption flag (FiberControl::begin_run sets it).
  std::atomic<bool>* preempt_;
  // The last yield point's call site (note_site()).
  SiteSlot site_{};
  alignas(16) unsigned char control_[kControlStorage];
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
  FiberCore& operator*() const noexcept { return *core_; }
  explicit operator bool() const noexcept { return core_ != nullptr; }

 private:
  FiberCore* core_ = nullptr;
};

// FiberState<T> holds the value and the published Exit of a fiber returning T.
template <class T>
class FiberState : public FiberCore {
 public:
  using FiberCore::FiberCore;
  // Not inlined: every FiberTask<T, F> (one per callable type) calls this one
  // body per T instead of carrying a copy of it (the Exit's and the value's
  // destructors). It was a fifth of a test file's code under ASan, and of
  // its compile time (docs/performance.md, "The code a fork costs").
  [[gnu::noinline]] ~FiberState() override {}
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
  // A void fiber keeps no value: an empty cause alone says it succeeded.
  struct NoValue {};
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
    if constexpr (!std::is_void_v<T>) value_.reset();
  }
  // For void, no byte at all: the 8 that an optional<monostate> took with
  // its padding put FiberTask<void, two references> in a 16-byte larger
  // block (384 -> 368: kernel_idle_memory, docs/performance.md).
  [[no_unique_address]] std::conditional_t<std::is_void_v<T>, NoValue, std::optional<T>> value_;
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
  void run_body(Cause& out) noexcept override {
    try {
      if constexpr (std::is_void_v<T>) {
        std::invoke(*fn_);
      } else {
        this->value_.emplace(std::invoke(*fn_));
      }
    } catch (const Interrupted& e) {
      this->body_interrupted(e, out);
    } catch (const BodyMark&) {  // never thrown: marks this chain (above)
      this->body_failed(out);
    } catch (...) {
      this->body_failed(out);
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

// scheduler_of() is the runtime `f` belongs to.
Scheduler& scheduler_of(const FiberCore& f) noexcept;
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
