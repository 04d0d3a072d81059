// The raw context switch: one execution context (a fiber's, or a worker
// thread's own) and the four operations on it, on Boost.Context's fcontext.
//
// Sanitizer annotations (ASan fiber switching, TSan fibers) and the per-context
// C++ exception globals are handled here, so callers never think about them.
//
// Rules for callers (the scheduler):
//  1. Publish after the switch. A suspended context's `fctx` is written by the
//     side that *receives* control, inside context_switch, after the jump. So a
//     fiber that suspends must be made resumable by others (pushed to a run
//     queue, stolen, woken) only by code that runs after context_switch has
//     returned in the context it switched to -- never by the fiber itself
//     before it switches away, or another worker may jump to a stale fctx.
//  2. Thread-locals across a switch. After context_switch returns, the code may
//     run on a different OS thread (the fiber migrated). The compiler is
//     allowed to compute the address of a thread_local once per function and
//     reuse it, so a function that calls context_switch (directly or through
//     any call that may suspend) must not touch thread_locals directly. Go
//     through out-of-line `noinline` accessors (set_running_fiber() is one),
//     which compute the address on every call, and do not keep the pointer
//     they return across a switch. The same holds for functions glibc
//     declares __attribute__((const)) and that read thread state:
//     pthread_self() (so std::this_thread::get_id()) and __errno_location()
//     (errno) may be evaluated once and reused after the switch; wrap them in
//     a noinline function containing asm volatile("" ::: "memory").
//  3. An ExecutionContext must not move while suspended (the receiving side
//     stores into it through a pointer).
#pragma once

#include <cstddef>
#include <cstdint>

#include "context/stack.hpp"

namespace weft::detail {

// ExecutionContext: the saved state of one suspended context. Trivially
// constructible; every field is always present (whatever the sanitizer flags)
// so translation units built with and without -DWEFT_ASAN agree on the layout.
struct ExecutionContext {
  void* fctx = nullptr;  // Boost fcontext_t of the suspended context

  // C++ exception globals (libstdc++/libc++abi __cxa_eh_globals) of this
  // context while it is not running; swapped on every switch. Until a new
  // context's first switch-in they hold its entry point and argument
  // instead (a context that never ran has no exception state): the
  // trampoline reads them back and clears the thread's globals, so a fiber's
  // context costs no two extra words for its once-used entry (issue 15).
  void* eh_caught_exceptions = nullptr;
  std::uintptr_t eh_uncaught_exceptions = 0;  // an unsigned int once running

  // ASan (WEFT_ASAN): fake-stack save slot and this context's stack bounds.
  struct AsanState {
    void* fake_stack;
    const void* stack_bottom;
    std::size_t stack_size;
  };
  // TSan (WEFT_TSAN): this context's TSan fiber; owned ones are destroyed by
  // context_destroy, a thread's own is not.
  struct TsanState {
    void* fiber;
    bool owned;
  };
  // ASan and TSan never instrument one build together: they share the
  // bytes (present in every build, for one layout). Only the sanitizer a
  // build has is used; value-initialised to zeros.
  union SanitizerState {
    AsanState asan;
    TsanState tsan;
  };
  SanitizerState san{};
};

// context_init_thread() describes the calling OS thread (a worker or any
// thread that switches to fibers) as a context to switch away from and back to.
void context_init_thread(ExecutionContext& self) noexcept;

// context_make() prepares ctx to run entry(arg) on stack when first switched
// to. entry must never return: it ends with context_exit().
void context_make(ExecutionContext& ctx, const Stack& stack, void (*entry)(void* arg),
                  void* arg) noexcept;

// context_switch() saves the running context into `from` and resumes `to`;
// it returns when some context switches back to `from` (possibly on another
// thread).
void context_switch(ExecutionContext& from, ExecutionContext& to) noexcept;

// context_exit() is the last switch away from a finished fiber: `from` is
// never resumed, its stack may be released once `to` runs.
[[noreturn]] void context_exit(ExecutionContext& from, ExecutionContext& to) noexcept;

// context_destroy() releases per-context sanitizer resources of a fiber that
// has exited; call it from another context. A no-op without sanitizers.
void context_destroy(ExecutionContext& ctx) noexcept;

// The running context's C++ exception globals, for an unwind that does not
// go through __cxa_throw (src/fiber/interrupt_unwind.cpp): whether a catch
// block is live, and std::uncaught_exceptions()'s count, which it keeps.
bool eh_in_catch_block() noexcept;
void eh_add_uncaught(int delta) noexcept;

}  // namespace weft::detail
