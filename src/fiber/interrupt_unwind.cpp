// Interrupt delivery by the unwinder's second phase alone
// (RuntimeOptions::interrupt_unwind; docs/performance.md, "Round 4";
// docs/internals.md, "Delivery by the unwinder's phase 2 alone").
//
// A throw runs two phases (Itanium C++ ABI, "Base ABI"): phase 1 walks up
// the stack asking each frame's personality whether it would catch; phase 2
// walks again, running cleanups, to the catching frame. When phase 1 is known
// to stop at the fiber's body and nowhere below it, phase 2 alone
// (_Unwind_ForcedUnwind) does exactly what the throw would: the same landing
// pads in the same order, ending in run_body()'s catch (...). What phase 1 would
// answer depends only on the frames' return addresses: walk_to_catch()
// (src/unwind/) reads them with a per-thread cache of decoded frame rules.
// A stack scope's fire (a timeout's deadline, a race sibling's win: a
// ScopeInterrupted when thrown) is delivered the same way when phase 1 would
// stop at the scope's own frame, and ends in that frame's catch (...)
// (end_scope_unwind()).
//
// What stays the same for the user: every finalizer runs once, in the same
// order; std::uncaught_exceptions() counts the unwind (kept by hand: the
// exception does not come from __cxa_throw); the fiber's Exit carries the
// same cause. What is declined (the ordinary throw runs instead):
//  - any catch clause or exception specification between the wait and the
//    body (or the scope's frame), including, for the fiber's own
//    interrupt, a timeout's or a race's frame on the same stack: a
//    forced unwind would pass `catch (Interrupted&)` (it matches only
//    `catch (...)` and abi::__forced_unwind) and enter `catch (...)` with an
//    object it cannot inspect;
//  - a live catch block (__cxa_begin_catch refuses a foreign exception on
//    top of a caught one). A wait in a handler is masked anyway
//    (interruptible_now()): the check is a defence;
//  - a frame the walker cannot read, or a target other than x86-64 Linux with
//    libstdc++ (frame_rule.hpp).
// The exception object is a foreign one (class "WEFTINTR"), in the fiber's
// side allocation: nothing is allocated, nothing is freed.
#include <unwind.h>

#include <cstdio>
#include <cstdlib>

#include "context/context.hpp"
#include "context/sanitizers.hpp"
#include "fiber/fiber_control.hpp"
#include "scheduler/scheduler.hpp"
#include "trace/counters.hpp"
#include "unwind/frame_rule.hpp"
#include "unwind/handler_walk.hpp"
#include "weft/detail/assert.hpp"

namespace weft::detail {
namespace {

// "WEFTINTR": the vendor and language bytes of the exception class (the ABI
// asks for 4 + 4 characters; anything but "GNUCC++\0" is foreign to libstdc++).
constexpr _Unwind_Exception_Class kExceptionClass = 0x57454654494e5452ull;

// The stop function of _Unwind_ForcedUnwind: never stops a frame; the body's
// catch (...) ends the unwind. Reaching the end of the
// stack means the walk was wrong: nothing sensible is left to do.
_Unwind_Reason_Code stop_never(int, _Unwind_Action actions, _Unwind_Exception_Class,
                               _Unwind_Exception*, _Unwind_Context*, void*) {
  if ((actions & _UA_END_OF_STACK) != 0) {
    std::fputs(
        "weft: an interrupt unwound past its fiber's body (RuntimeOptions::interrupt_unwind)\n",
        stderr);
    std::abort();
  }
  return _URC_NO_REASON;
}

}  // namespace

void FiberControl::enter_body(FiberCore& f, Cause& out) noexcept {
  f.run_body(out);
  // Code after the call: no sibling call, so this frame stays on the stack.
  asm volatile("" ::: "memory");
}

void FiberControl::unwind_interrupted(bool scoped) {
#if defined(WEFT_UNWIND_WALK)
  // Read first, so this function always has its frame pointer (the walk
  // starts from it: fp[0] is the caller's rbp, fp[1] its return address).
  const void* fp = __builtin_frame_address(0);
  if (!scheduler_->interrupt_unwind()) return;
  // An interrupted fiber has its extras (the interruptor list); a scope's
  // fire does not make them: they are made below, once the walk is clear.
  FiberExtras* x = extras_if_any();
  if ((x == nullptr && !scoped) || (x != nullptr && x->unwinding) || eh_in_catch_block()) return;
  const Stack& stack = context_.stack;
  unwind::Chain* chain = nullptr;
#ifdef WEFT_DEBUG_ASSERTS
  unwind::Chain checked;
  chain = &checked;
#endif
  const unwind::Walk walk =
      unwind::walk_to_catch(fp, scoped ? unwind::Target::scope : unwind::Target::body,
                            reinterpret_cast<std::uintptr_t>(&FiberControl::enter_body),
                            reinterpret_cast<std::uintptr_t>(stack.base),
                            reinterpret_cast<std::uintptr_t>(stack.top()), chain);
  if (walk != unwind::Walk::clear) return;
  if (x == nullptr && (x = extras_nothrow()) == nullptr) return;  // no memory: the throw
#ifdef WEFT_DEBUG_ASSERTS
  WEFT_CHECK(unwind::check_against_libgcc(checked),
             "interrupt_unwind: fiber {}'s stack walk disagrees with libgcc's", core().id());
#endif
  // As take_wait_cause(), without building the cause: end_unwind() builds
  // it once, from the request (it stays pending); the scope's catch needs none.
  mark_delivered(scoped ? FiberCore::kScopeDelivered : FiberCore::kDelivered);
  scheduler_->count(Counter::interrupts_unwound);
  x->unwind_exception = _Unwind_Exception{};
  x->unwind_exception.exception_class = kExceptionClass;
  x->unwind_exception.exception_cleanup = nullptr;  // it lives in FiberExtras
  x->unwinding = true;
  x->unwinding_scope = scoped;
  eh_add_uncaught(+1);  // what __cxa_throw does; end_unwind() undoes it
#if WEFT_CONTEXT_ASAN
  __asan_handle_no_return();  // as ASan's __cxa_throw interceptor: the frames below go
#endif
  _Unwind_ForcedUnwind(&x->unwind_exception, &stop_never, nullptr);
  std::fputs("weft: _Unwind_ForcedUnwind returned (RuntimeOptions::interrupt_unwind)\n", stderr);
  std::abort();
#endif
}

bool FiberControl::end_unwind(Cause& out) noexcept {
  FiberExtras* x = extras_if_any();
  if (x == nullptr || !x->unwinding) return false;
  WEFT_ASSERT(!x->unwinding_scope, "fiber {}: a stack scope's unwind reached the body", id());
  x->unwinding = false;
  eh_add_uncaught(-1);
  out = interrupt_cause();
  return true;
}

bool FiberControl::end_scope_unwind() noexcept {
  FiberExtras* x = extras_if_any();
  if (x == nullptr || !x->unwinding || !x->unwinding_scope) return false;
  x->unwinding = false;
  x->unwinding_scope = false;
  eh_add_uncaught(-1);  // __cxa_begin_catch leaves a foreign exception's count alone
  return true;
}

}  // namespace weft::detail
