// Context switching on Boost.Context fcontext, with the sanitizer annotations
// (as folly/fibers and seastar do: fcontext has no hooks of its own) and the
// per-context C++ exception globals.
#include "context/context.hpp"

#include <cxxabi.h>
#include <pthread.h>
#include <boost/context/detail/fcontext.hpp>

#include <cstdio>
#include <cstdlib>

#include "context/sanitizers.hpp"
#include "weft/detail/assert.hpp"

namespace weft::detail {
namespace {

namespace bctx = boost::context::detail;

// --- C++ exception globals -------------------------------------------------
//
// abi::__cxa_get_globals() returns the calling thread's
//   struct __cxa_eh_globals { __cxa_exception* caughtExceptions;
//                             unsigned int uncaughtExceptions; };
// which is what std::current_exception(), `throw;` and
// std::uncaught_exceptions() read. The layout is mirrored from
//   libstdc++  libsupc++/unwind-cxx.h   (struct __cxa_eh_globals)
//   libc++abi  src/cxa_exception.h      (struct __cxa_eh_globals)
// Both have the two fields above, plus `propagatingExceptions` on ARM EHABI
// only, which we refuse to build for. The type is opaque in <cxxabi.h>, so no
// static_assert can check it; tests/test_context.cpp checks the values against
// std::uncaught_exceptions() and a live catch block instead.
#if defined(__ARM_EABI_UNWINDER__) || (defined(__arm__) && !defined(__ARM_DWARF_EH__))
#error "weft: __cxa_eh_globals has a third field on ARM EHABI; extend EhGlobals"
#endif
struct EhGlobals {
  void* caught_exceptions;
  unsigned int uncaught_exceptions;
};

// The calling thread's __cxa_eh_globals. abi::__cxa_get_globals() lives in
// libstdc++.so and reaches its thread_local through __tls_get_addr, which
// cost ~1/3 of a switch; the address never changes for a thread, so each
// thread keeps it in an initial-exec thread_local (one %fs-relative load).
// Only read before a jump, never after: see the TLS rule in context.hpp.
__attribute__((tls_model("initial-exec"))) thread_local EhGlobals* tls_eh_globals = nullptr;

inline EhGlobals* this_thread_eh_globals() noexcept {
  EhGlobals* g = tls_eh_globals;
  if (g == nullptr) [[unlikely]] {
    g = reinterpret_cast<EhGlobals*>(abi::__cxa_get_globals());
    tls_eh_globals = g;
  }
  return g;
}

// Save the running context's exception globals into `from` and install `to`'s.
// Called on the current thread right before the jump: nothing throws between
// here and the jump, and the resumed side finds its own globals installed.
inline void swap_eh_globals(ExecutionContext& from, const ExecutionContext& to) noexcept {
  EhGlobals* g = this_thread_eh_globals();
  from.eh_caught_exceptions = g->caught_exceptions;
  from.eh_uncaught_exceptions = g->uncaught_exceptions;
  g->caught_exceptions = to.eh_caught_exceptions;  // a new context's: its entry (see trampoline)
  g->uncaught_exceptions = static_cast<unsigned int>(to.eh_uncaught_exceptions);
}

}  // namespace

bool eh_in_catch_block() noexcept { return this_thread_eh_globals()->caught_exceptions != nullptr; }

void eh_add_uncaught(int delta) noexcept {
  EhGlobals* g = this_thread_eh_globals();
  g->uncaught_exceptions =
      static_cast<unsigned int>(static_cast<int>(g->uncaught_exceptions) + delta);
}

namespace {

// --- The hop -----------------------------------------------------------------
//
// What a jump carries (jump_fcontext's data pointer). It lives on the jumper's
// stack, which stays untouched until the jumper is resumed -- and that can only
// happen after the receiver has stored the jumper's fctx, the first thing it
// does after reading the hop.
struct Hop {
  ExecutionContext* from;
  ExecutionContext* to;
};

inline void compiler_barrier() noexcept { asm volatile("" ::: "memory"); }

// Before the jump: sanitizer bookkeeping for leaving the running context.
// fake_stack_save == nullptr means "the running context is gone for good".
inline void before_jump(void** fake_stack_save, const ExecutionContext& to) noexcept {
#if WEFT_CONTEXT_ASAN
  __sanitizer_start_switch_fiber(fake_stack_save, to.san.asan.stack_bottom, to.san.asan.stack_size);
#else
  (void)fake_stack_save;
#endif
#if WEFT_CONTEXT_TSAN
  __tsan_switch_to_fiber(to.san.tsan.fiber, 0);
#else
  (void)to;
#endif
}

// After receiving control: record the jumper's fctx and finish the sanitizer
// switch. ASan tells us the bounds of the stack we came from, which is how a
// thread context learns its exact stack bounds (as folly does).
inline void after_jump(bctx::transfer_t t, void* own_fake_stack) noexcept {
  ExecutionContext* jumper = static_cast<Hop*>(t.data)->from;
  jumper->fctx = t.fctx;
#if WEFT_CONTEXT_ASAN
  const void* bottom = nullptr;
  std::size_t size = 0;
  __sanitizer_finish_switch_fiber(own_fake_stack, &bottom, &size);
  jumper->san.asan.stack_bottom = bottom;
  jumper->san.asan.stack_size = size;
#else
  (void)own_fake_stack;
#endif
}

// First entry of every fiber.
[[noreturn]] void trampoline(bctx::transfer_t t) noexcept {
  ExecutionContext* self = static_cast<Hop*>(t.data)->to;
  after_jump(t, nullptr);  // a new fiber has no fake stack yet
  compiler_barrier();
  // context_make left the entry and its argument in the exception-globals
  // slots, and swap_eh_globals copied them to this thread's globals: read
  // them back, then give this context the empty exception state it starts with.
  auto* entry = reinterpret_cast<void (*)(void*)>(
      reinterpret_cast<std::uintptr_t>(self->eh_caught_exceptions));
  void* arg = reinterpret_cast<void*>(self->eh_uncaught_exceptions);
  self->eh_caught_exceptions = nullptr;
  self->eh_uncaught_exceptions = 0;
  EhGlobals* g = this_thread_eh_globals();
  g->caught_exceptions = nullptr;
  g->uncaught_exceptions = 0;
  entry(arg);
  std::fputs("weft: fiber entry function returned instead of calling context_exit\n", stderr);
  std::abort();
}

}  // namespace

void context_init_thread(ExecutionContext& self) noexcept {
  self = ExecutionContext{};
#if WEFT_CONTEXT_ASAN
  // A fallback: the first switch back to this thread's context replaces it
  // with the exact bounds ASan reports in __sanitizer_finish_switch_fiber.
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    void* addr = nullptr;
    std::size_t size = 0;
    if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
      self.san.asan = {nullptr, addr, size};
    }
    pthread_attr_destroy(&attr);
  }
#endif
#if WEFT_CONTEXT_TSAN
  self.san.tsan = {__tsan_get_current_fiber(), false};
#endif
}

void context_make(ExecutionContext& ctx, const Stack& stack, void (*entry)(void* arg),
                  void* arg) noexcept {
  ctx = ExecutionContext{};  // a new fiber starts with no caught/uncaught exceptions
  ctx.eh_caught_exceptions = reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(entry));
  ctx.eh_uncaught_exceptions = reinterpret_cast<std::uintptr_t>(arg);
  ctx.fctx = bctx::make_fcontext(stack.top(), stack.size, &trampoline);
#if WEFT_CONTEXT_ASAN
  ctx.san.asan = {nullptr, stack.base, stack.size};
#endif
#if WEFT_CONTEXT_TSAN
  ctx.san.tsan = {__tsan_create_fiber(0), true};
#endif
}

void context_switch(ExecutionContext& from, ExecutionContext& to) noexcept {
  swap_eh_globals(from, to);
  Hop hop{&from, &to};
  before_jump(&from.san.asan.fake_stack, to);
  compiler_barrier();
  bctx::transfer_t t = bctx::jump_fcontext(to.fctx, &hop);
  compiler_barrier();
#if WEFT_CONTEXT_ASAN
  after_jump(t, from.san.asan.fake_stack);
#else
  after_jump(t, nullptr);
#endif
}

void context_exit(ExecutionContext& from, ExecutionContext& to) noexcept {
  swap_eh_globals(from, to);
  // A fiber ends outside any catch block and not while unwinding.
  WEFT_ASSERT(from.eh_caught_exceptions == nullptr && from.eh_uncaught_exceptions == 0,
              "context_exit with a live exception ({} uncaught)", from.eh_uncaught_exceptions);
  // Not on this stack: with detect_stack_use_after_return, locals live in
  // ASan's fake frames, which before_jump(nullptr) frees before the receiver
  // reads the hop. The jump stays on this thread, so a thread_local is safe.
  static thread_local Hop tls_exit_hop;
  tls_exit_hop = Hop{&from, &to};
  before_jump(nullptr, to);  // ASan frees this fiber's fake frames
  compiler_barrier();
  bctx::jump_fcontext(to.fctx, &tls_exit_hop);
  std::fputs("weft: a context was resumed after context_exit\n", stderr);
  std::abort();
}

void context_destroy(ExecutionContext& ctx) noexcept {
#if WEFT_CONTEXT_TSAN
  if (ctx.san.tsan.owned && ctx.san.tsan.fiber != nullptr) __tsan_destroy_fiber(ctx.san.tsan.fiber);
#endif
  ctx.san = ExecutionContext::SanitizerState{};
  ctx.fctx = nullptr;
}

}  // namespace weft::detail
