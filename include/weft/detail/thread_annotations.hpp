// Clang thread-safety annotations: which lock guards which field, which
// functions need a lock held, which acquire or release one. Under clang with
// -Wthread-safety (cmake/warnings.cmake turns it on for clang builds) a field
// touched without its lock, or a lock leaked at the end of a scope, is a
// compile error; under other compilers the macros expand to nothing.
//
// The attributes and their meaning are clang's, see
// https://clang.llvm.org/docs/ThreadSafetyAnalysis.html (the macro set follows
// the mutex.h given there, as marl's tsa.h and abseil's thread_annotations.h do).
#pragma once

#if defined(__clang__)
#define WEFT_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define WEFT_THREAD_ANNOTATION(x)
#endif

// WEFT_CAPABILITY(name): the class is a lock ("capability" named `name` in messages).
#define WEFT_CAPABILITY(name) WEFT_THREAD_ANNOTATION(capability(name))
// WEFT_SCOPED_CAPABILITY: the class is an RAII guard that holds a capability.
#define WEFT_SCOPED_CAPABILITY WEFT_THREAD_ANNOTATION(scoped_lockable)
// WEFT_GUARDED_BY(lock): the field is read and written only with `lock` held.
#define WEFT_GUARDED_BY(x) WEFT_THREAD_ANNOTATION(guarded_by(x))
// WEFT_PT_GUARDED_BY(lock): what the pointer field points to is guarded by `lock`.
#define WEFT_PT_GUARDED_BY(x) WEFT_THREAD_ANNOTATION(pt_guarded_by(x))
// WEFT_ACQUIRED_BEFORE / WEFT_ACQUIRED_AFTER: lock order between two locks.
#define WEFT_ACQUIRED_BEFORE(...) WEFT_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define WEFT_ACQUIRED_AFTER(...) WEFT_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))
// WEFT_REQUIRES(locks...): the caller must hold the locks ("lock held").
#define WEFT_REQUIRES(...) WEFT_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
// WEFT_ACQUIRE(locks...): the function takes the locks (no argument: `this`).
#define WEFT_ACQUIRE(...) WEFT_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
// WEFT_RELEASE(locks...): the function releases the locks (no argument: `this`).
#define WEFT_RELEASE(...) WEFT_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
// WEFT_TRY_ACQUIRE(ok, locks...): the function takes the locks when it returns `ok`.
#define WEFT_TRY_ACQUIRE(...) WEFT_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
// WEFT_EXCLUDES(locks...): the caller must not hold the locks (the function takes them).
#define WEFT_EXCLUDES(...) WEFT_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
// WEFT_ASSERT_CAPABILITY(lock): the function checks at run time that `lock` is held.
#define WEFT_ASSERT_CAPABILITY(x) WEFT_THREAD_ANNOTATION(assert_capability(x))
// WEFT_RETURN_CAPABILITY(lock): the accessor returns (a reference to) `lock`.
#define WEFT_RETURN_CAPABILITY(x) WEFT_THREAD_ANNOTATION(lock_returned(x))
// WEFT_NO_THREAD_SAFETY_ANALYSIS: the function is not checked; say why next to it.
#define WEFT_NO_THREAD_SAFETY_ANALYSIS WEFT_THREAD_ANNOTATION(no_thread_safety_analysis)
