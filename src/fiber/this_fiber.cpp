// this_fiber::*, weft::interrupt(), the mask guards and finalizer support.
#include <weft/interrupt.hpp>
#include <weft/on_exit.hpp>
#include <weft/this_fiber.hpp>

#include <fmt/format.h>

#include "fiber/fiber_control.hpp"
#include "scheduler/scheduler.hpp"

#include <cstdio>
#include <thread>

namespace weft {

namespace this_fiber {

FiberId id() noexcept { return detail::current_id(); }

void yield(weft::source_location where) {
  detail::FiberCore* f = detail::current_fiber();
  if (f == nullptr) {
    std::this_thread::yield();
    return;
  }
  f->note_site(where);
  f->throw_if_interrupted();
  detail::control(*f).yield();
  f->throw_if_interrupted();
}

namespace {

// sleep_status() parks until `t` on a wait nobody completes: only its
// deadline (or an interrupt) ends it. Its queue dies here, so that
// sleep_until() throws from a frame with no landing pad of ours
// (SyncQueue::park_status).
detail::WaitStatus sleep_status(std::chrono::steady_clock::time_point t,
                                weft::source_location where) noexcept {
  detail::SyncQueue never_woken;
  std::unique_lock lk(never_woken.lock());
  detail::WaitSlot slot;
  return never_woken.park_status(lk, slot, {"sleep", nullptr, where}, t);
}

}  // namespace

void sleep_until(std::chrono::steady_clock::time_point t, weft::source_location where) {
  detail::enter_yield_point(where);
  if (sleep_status(t, where) == detail::WaitStatus::interrupted) detail::throw_wait_interrupted();
}

std::chrono::steady_clock::time_point now() noexcept { return detail::clock_now(); }

void sleep_for(std::chrono::nanoseconds d, weft::source_location where) {
  sleep_until(
      detail::clock_now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(d),
      where);
}

bool interruptible() noexcept {
  detail::FiberCore* f = detail::current_fiber();
  return f != nullptr && detail::control(*f).interruptible_now();
}

bool interrupt_requested() noexcept {
  detail::FiberCore* f = detail::current_fiber();
  return f != nullptr && f->any_interrupt_pending();
}

std::stop_token stop_token() {
  detail::FiberCore* f = detail::current_fiber();
  if (f == nullptr) return {};
  detail::FiberControl& c = detail::control(*f);
  // DESIGN 3.3/3.4: where no interrupt can be delivered (a mask, a
  // finalizer while unwinding, a catch block), a token must not stop the
  // code it is handed to either: an unstoppable one.
  if (!c.interruptible_now()) return {};
  return c.stop_token();
}

}  // namespace this_fiber

void interrupt() {
  detail::FiberCore* f = detail::current_fiber();
  if (f == nullptr) throw std::logic_error("weft::interrupt() called outside any fiber");
  f->request_interrupt(f->id());
  f->throw_if_interrupted();
}

namespace detail {

MaskGuard::MaskGuard(bool interruptible) noexcept : fiber_(current_fiber()) {
  if (fiber_ == nullptr) return;
  FiberControl& f = control(*fiber_);
  previous_ = f.mask_status();
  depth_ = ++f.guard_depth();
  f.set_mask_status(interruptible);
}

MaskGuard::~MaskGuard() {
  if (fiber_ == nullptr) return;
  // Always checked (an integer compare): a guard closed out of order or on
  // another fiber would leave a wrong interruptibility behind, silently.
  WEFT_CHECK(current_fiber() == fiber_,
             "an Uninterruptible/Interruptible guard of fiber {} was destroyed on {}", fiber_->id(),
             current_id());
  FiberControl& f = control(*fiber_);
  WEFT_CHECK(f.guard_depth() == depth_,
             "interruption guards of fiber {} destroyed out of order (depth {} closed at {})",
             fiber_->id(), depth_, f.guard_depth());
  --f.guard_depth();
  if (!f.mask_status()) fiber_->note_held_off();  // a mask closing with a request pending
  f.set_mask_status(previous_);
}

Cause unwinding_cause() {
  FiberCore* f = current_fiber();
  if (f != nullptr && control(*f).interrupting()) return control(*f).interrupt_cause();
  // A timeout's task on this fiber's stack, unwound by its deadline.
  if (f != nullptr && control(*f).scope_unwinding()) return control(*f).scope_cause();
  return Cause::fail(std::make_exception_ptr(InFlightException{}));
}

void record_finalizer_failure(std::exception_ptr e) noexcept {
  if (FiberCore* f = current_fiber()) {
    try {
      control(*f).add_finalizer_failure(std::move(e));
      return;
    } catch (...) {
    }
  }
  std::string what = "unknown exception";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    what = x.what();
  } catch (...) {
  }
  std::fprintf(stderr, "weft: a finalizer failed while unwinding outside any fiber: %s\n",
               what.c_str());
}

}  // namespace detail
}  // namespace weft
