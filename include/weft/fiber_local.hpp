// FiberLocal<T>: a value per fiber (Effect's FiberRef, a Kotlin
// CoroutineContext element) for what code carries implicitly: a request id,
// a log context, a tenant, a tracing span.
//
// Why not thread_local: a fiber that reaches a yield point may resume on
// another worker thread, where a thread_local holds another thread's value
// (README, "Fibers that compute"). A FiberLocal follows the fiber.
//
// Contract:
// - Inheritance. A fiber started by weft::fork or weft::fork_daemon (and so
//   by disconnect, race, all, for_each_par, timeout and Scope::fork) starts
//   with its forker's values as they are at the fork. From then on the two
//   are independent: a set() in the parent after the fork is not seen by the
//   child, nor the child's by the parent. Runtime::spawn, block_on and
//   block_on_main start roots at the initial values, even when called from
//   a fiber: they are entry points, often shared by unrelated requests, as
//   Effect's Runtime.runFork (its forkDaemon copies, as ours does).
// - Plain threads. Outside any fiber, get/set/Scoped act on a per-thread
//   table: a plain thread behaves like one fiber of its own. Fibers it
//   starts (spawn, block_on) do not inherit it. The values are destroyed
//   when the thread exits.
// - Lifetime. A value is destroyed (exactly once) when the last fiber or
//   thread holding it lets go: at set()/Scoped exit when unshared, else at
//   the fiber's end, after its finalizers (destructors, OnExit, the
//   callable's captures: finalizers may read locals) and before its Exit is
//   published. A Fiber handle kept afterwards does not keep them. A FiberLocal may be destroyed
//   while fibers still hold values for it: they are destroyed with those fibers; keys are never
//   reused (a process-unique id per FiberLocal, not its address).
// - Threads. Each fiber reads and changes only its own values: nothing to
//   lock, and no data race whatever the parent and child do after a fork.
//   The FiberLocal object itself (its initial value) is shared and read-only.
// - Cost. get() on a fiber that never set a local: two calls and a null
//   check, no allocation. fork of such a fiber: a null pointer copy. After a
//   set, fork shares the parent's table (one atomic increment) and the first
//   later change on either side copies it (copy-on-write; values themselves
//   are shared immutable boxes, never copied). set() allocates the value's box.
#pragma once

#include <weft/detail/local_map.hpp>

#include <cstdint>
#include <type_traits>
#include <utility>

namespace weft {

namespace detail {
// new_local_key() is a process-unique FiberLocal id (never reused).
std::uint64_t new_local_key() noexcept;
// current_locals() is the current fiber's LocalMap, or this plain thread's.
LocalMap& current_locals() noexcept;
// find_local() is current_locals().find(key), in one call.
const LocalBox* find_local(std::uint64_t key) noexcept;
// restore_local() ends a Scoped: puts `previous` back for `key` in `owner`,
// which must be the current fiber's (or thread's) map (checked: a Scoped
// closed on another fiber would corrupt both).
void restore_local(LocalMap* owner, std::uint64_t key, LocalBox* previous) noexcept;
}  // namespace detail

// FiberLocal<T> holds one T per fiber; see the contract above.
template <class T>
class FiberLocal {
  static_assert(std::is_object_v<T> && !std::is_const_v<T>,
                "FiberLocal<T>: T must be a value type");
  static_assert(std::is_nothrow_destructible_v<T>, "FiberLocal<T>: T's destructor must not throw");

 public:
  class Scoped;

  // FiberLocal(initial) makes a local whose value is `initial` in every
  // fiber (and thread) until it sets one.
  explicit FiberLocal(T initial = T{})
      : initial_(std::move(initial)), key_(detail::new_local_key()) {}
  FiberLocal(const FiberLocal&) = delete;
  FiberLocal& operator=(const FiberLocal&) = delete;

  // get() is the current fiber's value (its parent's at fork, or the
  // initial value). The reference is valid until this fiber next changes
  // this local (set, or a Scoped opening or closing).
  const T& get() const noexcept {
    const detail::LocalBox* box = detail::find_local(key_);
    return box != nullptr ? static_cast<const detail::LocalValue<T>*>(box)->value : initial_;
  }
  // set() replaces the current fiber's value; no other fiber sees it.
  void set(T value) {
    detail::LocalMap& mine = detail::current_locals();
    detail::release_box(mine.exchange(key_, new detail::LocalValue<T>(std::move(value))));
  }

 private:
  T initial_;
  std::uint64_t key_;
};

// Scoped sets a FiberLocal for its scope and puts the previous value back
// when the scope ends: on a normal exit, an exception or an interruption.
// It must end on the fiber (or thread) that made it, innermost first.
template <class T>
class [[nodiscard("a Scoped value lasts only while the guard lives")]] FiberLocal<T>::Scoped {
 public:
  // Scoped(local, value) makes `value` the current fiber's value of `local`.
  Scoped(FiberLocal & local, T value)
      : key_(local.key_),
        owner_(&detail::current_locals()),
        previous_(owner_->exchange(key_, new detail::LocalValue<T>(std::move(value)))) {}
  Scoped(const Scoped&) = delete;
  Scoped& operator=(const Scoped&) = delete;
  // ~Scoped() restores the value in force before the guard.
  ~Scoped() { detail::restore_local(owner_, key_, previous_); }

 private:
  std::uint64_t key_;
  detail::LocalMap* owner_;
  detail::LocalBox* previous_;  // owned; nullptr: the initial value
};

}  // namespace weft
