// A fiber's life, interruption requests and delivery, supervision: the
// narrow handle (FiberCore) and its private part (FiberControl). The state
// machine is in docs/internals.md.
#include <weft/detail/fiber_core.hpp>
#include <weft/detail/fiber_group.hpp>
#include <weft/fiber.hpp>

#include "context/block_pool.hpp"
#include "exit/rethrown.hpp"
#include "fiber/fiber_control.hpp"
#include "scheduler/scheduler.hpp"

#include <fmt/format.h>

#include <exception>

namespace weft::detail {

namespace {
std::atomic<std::uint64_t> g_next_id{1};  // ids are process-unique, not scheduler state
#ifdef WEFT_DEBUG_ASSERTS
std::atomic<std::int64_t> g_live_objects{0};  // debug leak counter, not scheduler state
#endif
void count_object([[maybe_unused]] int d) noexcept {
#ifdef WEFT_DEBUG_ASSERTS
  g_live_objects.fetch_add(d, std::memory_order_relaxed);
#endif
}
}  // namespace

Cause::Site site_of(const FiberControl& f) { return {f.id(), f.name()}; }

namespace {
std::atomic<bool> g_no_preempt{false};  // a flag never set: before the first run
}  // namespace

static_assert(sizeof(FiberControl) <= FiberCore::kControlStorage,
              "raise FiberCore::kControlStorage");
static_assert(alignof(FiberControl) <= 16);
// core() relies on control_ being at kControlOffset (the last member).
static_assert(FiberControl::kControlOffset + FiberCore::kControlStorage <= sizeof(FiberCore));

std::int64_t live_fiber_objects() noexcept {
#ifdef WEFT_DEBUG_ASSERTS
  return g_live_objects.load(std::memory_order_relaxed);
#else
  return 0;
#endif
}

// Each thread takes ids from the shared counter in blocks (Go's goidcache,
// _GoidCacheBatch): one fetch_add per fiber on a counter that every worker
// forks from moved its cache line between the cores on each fork, 16 % of
// skynet's time at 2 workers here (docs/performance.md, "Round 7"). Ids stay
// unique, and ordered within a thread; across threads they are not in
// creation order (nothing promised that).
FiberId new_fiber_id() noexcept {
  constexpr std::uint64_t kBatch = 256;
  thread_local std::uint64_t next = 0, end = 0;
  if (next == end) {
    next = g_next_id.fetch_add(kBatch, std::memory_order_relaxed);
    end = next + kBatch;
  }
  return FiberId(next++);
}

FiberId current_id() noexcept {
  if (FiberCore* f = current_fiber()) return f->id();
  thread_local const FiberId tls_thread_id = new_fiber_id();
  return tls_thread_id;
}

Scheduler* current_scheduler() noexcept {
  FiberCore* f = current_fiber();
  return f != nullptr ? &control(*f).scheduler() : nullptr;
}

Scheduler& require_scheduler(const char* what) {
  Scheduler* s = current_scheduler();
  if (s == nullptr)
    throw std::logic_error(fmt::format("{} called outside any fiber; use Runtime::spawn", what));
  return *s;
}

namespace {
// A plain thread's slot (a plain thread does not migrate, so a
// thread-local is its own). Out of line and noinline: a fiber's call may
// have migrated since its last one (context.hpp, rule 2).
[[gnu::noinline]] Cause& thread_rethrown_slot() noexcept {
  thread_local Cause tls_rethrown;
  return tls_rethrown;
}
}  // namespace

void remember_rethrown(const Cause& leaf) noexcept {
  // A fiber's slot is in its extras, made here on the first rethrow.
  if (FiberCore* f = current_fiber()) {
    control(*f).rethrown() = leaf;
  } else {
    thread_rethrown_slot() = leaf;
  }
}

Cause recall_rethrown(const std::exception_ptr& error) noexcept {
  const Cause* leaf = nullptr;
  if (FiberCore* f = current_fiber()) {
    leaf = control(*f).rethrown_if_any();  // nullptr: never rethrew
  } else {
    leaf = &thread_rethrown_slot();
  }
  if (leaf != nullptr && !leaf->empty() && leaf->exception() == error) return *leaf;
  return Cause();
}

void check_stack_size(std::size_t size, const char* what) {
  if (size != 0 && size < StackPool::kMinStackSize)
    throw std::invalid_argument(fmt::format("weft: {} = {} is below the minimum of {} bytes", what,
                                            size, StackPool::kMinStackSize));
  if (size > StackPool::kMaxStackSize)
    throw std::invalid_argument(fmt::format("weft: {} = {} is above the maximum of {} bytes", what,
                                            size, StackPool::kMaxStackSize));
}

Scheduler& scheduler_of(const FiberCore& f) noexcept { return control(f).scheduler(); }

FiberCore::FiberCore(Scheduler& scheduler, FiberCore* parent, const ForkOptions& options)
    : id_(new_fiber_id()), preempt_(&g_no_preempt) {
  new (control_) FiberControl(*this, scheduler, parent, options);
  count_object(1);
}

FiberCore::~FiberCore() {
  control(*this).~FiberControl();
  count_object(-1);
}

void* FiberCore::operator new(std::size_t size) { return block_allocate(size); }

void FiberCore::operator delete(void* p, std::size_t size) noexcept { block_free(p, size); }

void FiberCore::release() noexcept {
  // acq_rel: the last owner sees every write made through other references.
  // Out of line: inlined, the destructor call bloats every handle's copy.
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

bool FiberCore::release_unless_last() noexcept {
  // acq_rel as release(): the last owner, whoever it is, sees our writes.
  std::uint32_t n = refs_.load(std::memory_order_relaxed);
  while (n > 1) {
    if (refs_.compare_exchange_weak(n, n - 1, std::memory_order_acq_rel, std::memory_order_relaxed))
      return true;
  }
  return false;
}

FiberControl::FiberControl(FiberCore& core, Scheduler& scheduler, FiberCore* parent,
                           const ForkOptions& options)
    : scheduler_(&scheduler),
      parent_(parent != nullptr ? &control(*parent) : nullptr),
      forked_uninterruptible_(options.uninterruptible),
      interruptible_(!options.uninterruptible) {
  WEFT_ASSERT(&core == &this->core(), "FiberControl not at FiberCore::control_");
  (void)core;
  // The stack is taken at the first run; until then its size is the request.
  context_.stack.size =
      options.stack_size != 0 ? options.stack_size : scheduler.default_stack_size();
  if (!options.name.empty()) extras().name = options.name;
}

FiberControl::~FiberControl() { delete extras_.load(std::memory_order_acquire); }

FiberExtras* FiberControl::extras_nothrow() noexcept {
  FiberExtras* x = extras_.load(std::memory_order_acquire);
  if (x != nullptr) [[likely]]
    return x;
  // The owner (a name, a finalizer failure, a rethrow, a Mutex, a FiberLocal)
  // and interrupters on other threads may race here: the first CAS wins, the
  // others free their copy. acq_rel: the winner's construction happens
  // before every use through the pointer (the losers' acquire reads it).
  auto* mine = new (std::nothrow) FiberExtras();
  if (mine == nullptr) return nullptr;
  if (extras_.compare_exchange_strong(x, mine, std::memory_order_acq_rel,
                                      std::memory_order_acquire))
    return mine;
  delete mine;
  return x;
}

FiberExtras& FiberControl::extras() {
  FiberExtras* x = extras_nothrow();
  if (x == nullptr) [[unlikely]]
    throw std::bad_alloc();
  return *x;
}

const std::string& FiberControl::name() const noexcept {
  static const std::string kNone;
  const FiberExtras* x = extras_if_any();
  return x != nullptr ? x->name : kNone;
}

// ---------------------------------------------------------------------------
// Starting

namespace {
// count_fork() counts a fork on w (nullptr: a plain thread) and samples the
// live peak (f already counted live) after each of w's first kPeakEvery forks and every
// kPeakEvery-th one after (RuntimeStats::fibers_peak): sampling sums every worker's count.
void count_fork(Scheduler& s, Worker* w) noexcept {
  constexpr std::uint64_t kPeakEvery = 64;  // a power of two
  if (w == nullptr) {
    s.count(Counter::forked);
    s.sample_peak();
    return;
  }
  w->counters().bump_owned(Counter::forked);
  const std::uint64_t n = w->counters().get(Counter::forked);
  if (n <= kPeakEvery || (n & (kPeakEvery - 1)) == 0) [[unlikely]]
    s.sample_peak();
}
}  // namespace

void start_fiber(FiberCore* fiber, bool root) {
  FiberControl* f = &control(*fiber);
  Scheduler& s = f->scheduler();
  fiber->retain();  // the runtime's reference, dropped by the worker at the end
  if (root) {
    s.register_root(f);
    if (!s.accepting()) f->request_interrupt(current_id());
  } else {
    FiberControl* parent = f->parent();
    parent->core().retain();  // released when the child has unlinked itself
    parent->add_child(f);
    // A fork by the task of a timeout running on the parent's own stack: the
    // scope interrupts and awaits it when it ends, as a forked task's end
    // would (DESIGN 3.5). Only the parent itself reads its scope.
    if (&parent->core() == current_fiber()) parent->note_fork(*f);
  }
  Worker* w = s.current_worker();
  if (Tracer* t = s.tracer()) [[unlikely]]
    t->fork(w, *f, root ? 0 : f->parent()->id().value());
  if (w != nullptr) {
    w->add_live(1);
    count_fork(s, w);
    w->push_local(f);
  } else {
    s.add_live(1);
    count_fork(s, nullptr);
    s.inject(f);
  }
}

void FiberControl::add_child(FiberControl* child) noexcept {
  std::lock_guard lk(children_lock_);
  children_.push_front(*child);
}

void FiberControl::remove_child(FiberControl* child) noexcept {
  std::lock_guard lk(children_lock_);
  children_.remove(*child);
}

void FiberControl::children_snapshot(std::vector<FiberRef>& out, bool live_only) {
  const std::size_t base = out.size();
  for (;;) {
    std::size_t need;
    {
      std::lock_guard lk(children_lock_);
      need = children_.size();
      // Fits the capacity already there (always, for a fiber without
      // children: the common end of a fiber costs the lock and no call).
      if (need <= out.capacity() - base) {
        for (FiberControl* c = children_.front(); c != nullptr; c = children_.next(*c)) {
          if (live_only && c->core().done()) continue;
          c->core().retain();
          out.emplace_back(&c->core());  // within the capacity: no allocation
        }
        return;
      }
    }
    out.reserve(base + need + need / 2);  // grow outside the lock, then re-check
  }
}

// ---------------------------------------------------------------------------
// Running and ending (owner, on its own stack)

void FiberControl::run_on_own_stack() noexcept {
  live_and_end();
  // Nothing with a destructor may live in this frame: context_exit never
  // returns. worker_ is re-read: the fiber may have migrated while ending.
  switch_action_ = SwitchAction::exit;
  Worker* const w = worker_;
  // Direct exit (docs/internals.md): straight into the worker's next fiber
  // (typically the joiner publish() just woke into the LIFO slot), which
  // releases our stack and the runtime's reference on its own stack.
  if (FiberControl* next = w->pick_direct_exit(this))
    context_exit(context_.ctx, next->context_.ctx);
  context_exit(context_.ctx, w->sched_context());
}

void FiberControl::live_and_end() noexcept {
  started_ = true;
  Cause cause = run_and_catch();
  // DESIGN 3.5: the end of the body is an interruptible boundary.
  if (cause.empty() && interrupt_pending() && !forked_uninterruptible_) {
    if (!interrupting()) note_delivered();  // held off until now, it ends the fiber
    cause = interrupt_cause();
  }
  cause = take_finalizer_failures(0, std::move(cause));
  // The body and its finalizers are over: drop the exception rethrow_cause()
  // held and this fiber's FiberLocal values (a handle kept alive does not
  // keep them; forked children share the table by reference).
  if (FiberExtras* x = extras_if_any()) {
    x->rethrown = Cause();
    x->locals = LocalMap();
  }
  end_children();
  if (Tracer* t = scheduler_->tracer()) [[unlikely]]
    t->finalizer(scheduler_->current_worker(), *this, /*start=*/false);
  publish(cause);
}

void FiberCore::body_interrupted(const Interrupted& e, Cause& out) noexcept {
  const FiberControl& self = control(*this);
  out = self.interrupt_pending() ? self.interrupt_cause() : e.cause();
}

void FiberCore::body_failed(Cause& out) noexcept {
  FiberControl& self = control(*this);
  if (self.end_unwind(out)) return;  // its interrupt, by phase 2 alone
  // Cause::fail unwraps an escaping CauseError (its leaves keep their fibers).
  out = Cause::fail(std::current_exception(), {}, site_of(self));
  if (self.interrupting()) out = Cause::sequential(self.interrupt_cause(), std::move(out));
}

Cause FiberControl::run_and_catch() noexcept {
  Cause cause;
  enter_body(core(), cause);  // a frame of its own: see enter_body()
  // The callable's captures are finalizers too; they run masked. The trace
  // shows them, and the awaiting of the children, as the fiber's finalizer.
  interruptible_ = false;
  finalizing_.store(true, std::memory_order_relaxed);
  if (Tracer* t = scheduler_->tracer()) [[unlikely]]
    t->finalizer(scheduler_->current_worker(), *this, /*start=*/true);
  core().destroy_callable();
  return cause;
}

Cause FiberControl::take_finalizer_failures(std::size_t n, Cause cause) {
  FiberExtras* x = extras_if_any();
  if (x == nullptr) return cause;  // no finalizer failed
  std::vector<std::exception_ptr>& failures = x->finalizer_failures;
  for (std::size_t i = n; i < failures.size(); ++i)
    cause = Cause::sequential(std::move(cause),
                              Cause::fail(failures[i], "in finalizer", site_of(*this)));
  failures.resize(std::min(n, failures.size()));
  return cause;
}

void FiberControl::add_finalizer_failure(std::exception_ptr e) {
  extras().finalizer_failures.push_back(std::move(e));
}

void FiberControl::end_children() noexcept {
  // DESIGN 3.5: interrupt the live fork children (attributed to us), await
  // them; again until none is left, in case one was added meanwhile.
  interruptible_ = false;
  for (;;) {
    std::vector<FiberRef> live;
    children_snapshot(live, /*live_only=*/true);
    FiberGroup children(std::move(live));
    if (children.empty()) return;
    children.stop(id());
  }
}

void FiberControl::publish(const Cause& cause) noexcept {
  if (Tracer* t = scheduler_->tracer()) [[unlikely]] {
    const ExitKind kind = cause.empty()              ? ExitKind::success
                          : cause.interrupted_only() ? ExitKind::interrupted
                                                     : ExitKind::failure;
    t->exit(scheduler_->current_worker(), *this, kind);
  }
  core().store_exit(cause);
  {
    std::unique_lock lk(joiners_.lock());
    core().done_.store(true, std::memory_order_release);
    joiners_.wake_all(lk, [](Waiter*) {});
  }
  if (parent_ != nullptr) {
    FiberControl* parent = parent_;
    parent->remove_child(this);
    parent->core().release();
  } else {
    scheduler_->unregister_root(this);
  }
}

void FiberControl::complete_unstarted() noexcept {
  note_delivered();  // the interrupt ends it before its first run
  Tracer* const t = scheduler_->tracer();
  if (t != nullptr) [[unlikely]]
    t->finalizer(scheduler_->current_worker(), *this, /*start=*/true);
  core().destroy_callable();  // its captures are its only finalizers
  if (t != nullptr) [[unlikely]]
    t->finalizer(scheduler_->current_worker(), *this, /*start=*/false);
  publish(interrupt_cause());
}

// ---------------------------------------------------------------------------
// Awaiting

void FiberCore::await_done(weft::source_location where, const char* what) {
  [[maybe_unused]] const bool ended =
      await_done_until(std::chrono::steady_clock::time_point::max(), where, what);
  WEFT_ASSERT(ended, "await of fiber {} woke before its end", id_);
}

bool FiberCore::await_done_until(std::chrono::steady_clock::time_point deadline,
                                 weft::source_location where, const char* what) {
  if (FiberCore* self = current_fiber()) {
    if (self == this)
      throw std::logic_error(
          fmt::format("weft: fiber {} awaits itself (it would wait forever)", id_));
    // A yield point even when the fiber already ended, as every primitive
    // (Deferred::await, Channel::receive...) and Go's and Effect's joins.
    if (where.line() != 0) self->note_site(where);
    self->throw_if_interrupted();
  }
  return control(*this).wait_end(deadline, /*interruptible=*/true, {what, this, where});
}

void FiberControl::await_done_masked() noexcept {
  // Masked and without a deadline, the wait ends only at the end.
  [[maybe_unused]] const bool ended =
      await_done_masked_until(std::chrono::steady_clock::time_point::max());
  WEFT_ASSERT(ended, "masked await of fiber {} woke before its end", id());
}

bool FiberControl::await_done_masked_until(
    std::chrono::steady_clock::time_point deadline) noexcept {
  return wait_end(deadline, /*interruptible=*/false, {"await the end (masked)", &core(), {}});
}

bool FiberControl::wait_end(std::chrono::steady_clock::time_point deadline, bool interruptible,
                            const WaitSite& site) {
  if (core().done()) return true;
  WaitSlot slot;
  WaitStatus st;
  {  // no landing pad for the lock at the throw (SyncQueue::park_status)
    std::unique_lock lk(joiners_.lock());
    if (core().done()) return true;
    st = joiners_.park_status(lk, slot, site, deadline, interruptible);
  }
  // A fiber's control block outlives its joiners (each holds a reference),
  // so the queue is never destroyed under them.
  return SyncQueue::finish_park(st, slot, "weft: fiber destroyed while awaited") || core().done();
}

// ---------------------------------------------------------------------------
// Interruption

void FiberCore::request_interrupt(FiberId by) { control(*this).request_interrupt(by); }

void FiberControl::request_interrupt(FiberId by) {
  scheduler_->count(Counter::interrupts_requested);
  if (Tracer* t = scheduler_->tracer()) [[unlikely]]
    t->interrupt_requested(scheduler_->current_worker(), *this, by);
  std::stop_source* stop = nullptr;
  {
    FiberExtras& x = extras();  // made by the first requester
    std::lock_guard lk(x.interrupt_lock);
    x.interruptors.push_back(by);
    stop = x.stop_source.get();
  }
  // seq_cst: pairs with the owner's seq_cst begin_wait() + flag read (Dekker).
  core().interrupt_flags_.fetch_or(FiberCore::kPending, std::memory_order_seq_cst);
  if (try_claim_interrupted()) unpark();
  if (stop != nullptr) stop->request_stop();
  // The open timeout scope's token too (a copy: the owner may drop the
  // scope's source meanwhile; the shared stop state outlives both).
  std::stop_source scope_stop(std::nostopstate);
  {
    FiberExtras& x = extras();
    std::lock_guard lk(x.interrupt_lock);
    scope_stop = x.scope_stop;
  }
  if (scope_stop.stop_possible()) scope_stop.request_stop();
}

bool FiberControl::interrupt_scoped() const noexcept {
  // The fiber's own interrupt wins: it passes every timeout frame.
  return (core().interrupt_flags_.load(std::memory_order_seq_cst) & FiberCore::kPending) == 0;
}

Cause FiberControl::take_wait_cause(bool scoped) {
  return scoped ? take_scope_cause() : take_interrupt_cause();
}

Cause FiberControl::take_interrupt_cause() {
  mark_delivered(FiberCore::kDelivered);
  return interrupt_cause();
}

void FiberControl::note_delivered() noexcept {
  scheduler_->count(Counter::interrupts_delivered);
  if (Tracer* t = scheduler_->tracer()) [[unlikely]]
    t->interrupt_delivered(scheduler_->current_worker(), *this);
}

Cause FiberControl::interrupt_cause() const {
  const FiberExtras* x = extras_if_any();
  if (x == nullptr) return Cause();  // never interrupted
  const Cause::Site self = site_of(*this);
  std::lock_guard lk(x->interrupt_lock);
  Cause c;
  for (FiberId by : x->interruptors) c = Cause::parallel(std::move(c), Cause::interrupt(by, self));
  return c;
}

std::size_t FiberControl::interrupters_snapshot(FiberId* out, std::size_t max) const {
  const FiberExtras* x = extras_if_any();
  if (x == nullptr) return 0;
  std::lock_guard lk(x->interrupt_lock);
  std::copy_n(x->interruptors.begin(), std::min(max, x->interruptors.size()), out);
  return x->interruptors.size();
}

std::stop_token FiberControl::stop_token() {
  FiberExtras& x = extras();
  std::lock_guard lk(x.interrupt_lock);
  if (scope_open_) {
    // Inside a timeout's task: a token its deadline stops, as the token of a
    // forked task would be (and any interrupt of the fiber).
    if (!x.scope_stop.stop_possible()) {
      x.scope_stop = std::stop_source();
      scope_stop_made_ = true;
      if (core().any_interrupt_pending()) x.scope_stop.request_stop();
    }
    return x.scope_stop.get_token();
  }
  if (!x.stop_source) {
    x.stop_source = std::make_unique<std::stop_source>();
    if (interrupt_pending()) x.stop_source->request_stop();
  }
  return x.stop_source->get_token();
}

bool FiberControl::interruptible_now() const noexcept {
  // DESIGN 3.4: never throw while an exception is in flight or being handled.
  return interruptible_ && std::uncaught_exceptions() == 0 && !std::current_exception();
}

void FiberCore::deliver_interrupt() { control(*this).deliver_interrupt(); }

void FiberControl::deliver_interrupt() {
  if (!interruptible_now()) {
    core().note_held_off();
    return;
  }
  if (interrupt_pending()) throw_interrupted();
  throw_scope_interrupted();  // only the timeout scope's deadline is pending
}

void FiberCore::check_interrupt_slow() { control(*this).check_interrupt_slow(); }

void FiberControl::check_interrupt_slow() {
  // A preemption request: this fiber's worker has run it for a monitor
  // interval while other work waited. Yield once (not an interruption: masks
  // do not apply), then deliver as every yield point does. A request meant
  // for the worker's previous fiber costs this one a spurious yield at most.
  if (core().preempt_->exchange(false, std::memory_order_relaxed)) {
    core().throw_if_interrupted();
    suspend(SwitchAction::yield);
  }
  core().throw_if_interrupted();
}

void interrupt_self_and_check(FiberCore& self) {
  if (control(self).interruptible_now()) self.throw_if_interrupted();
  throw std::logic_error(fmt::format(
      "weft: fiber {} called interrupt() on itself inside an uninterruptible region; it would "
      "wait for itself forever (use weft::interrupt() to record a self-interrupt)",
      self.id()));
}

}  // namespace weft::detail
