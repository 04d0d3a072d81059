// LocalMap: the FiberLocal values of one fiber (or one plain thread), the
// type of FiberControl's one `locals_` member (src/fiber/fiber_control.hpp).
// Users never name it; the public side is <weft/fiber_local.hpp>, the logic
// is src/locals/.
//
// Shape (Effect's FiberRefs, Clojure's persistent maps): a copy-on-write
// pointer to an immutable, refcounted table of (key, LocalBox*) entries. A
// null pointer means "every local at its initial value", so a fiber that
// never set one costs nothing to fork (a null copy) and to read (a null
// check). Fork shares the table (one refcount increment); the owner's next
// change clones it first, so neither side ever sees the other's later change.
// Each value sits in its own immutable, refcounted LocalBox, so a clone
// copies pointers, never values.
//
// Ownership and threads: only the owning fiber (or thread) reads or changes
// its LocalMap; a fork copies it on the parent's stack before the child is
// published (start_fiber), and the last holder frees it from any thread
// (refcounts are acq_rel: the freeing thread sees every write before).
#pragma once

#include <atomic>
#include <cstdint>
#include <utility>

namespace weft::detail {

// LocalBox is one immutable FiberLocal value, refcounted and type-erased:
// `destroy` knows the concrete type (LocalValue<T>), never the FiberLocal,
// so a value outlives the FiberLocal object that made it.
struct LocalBox {
  std::atomic<std::uint32_t> refs{1};
  void (*destroy)(LocalBox*) noexcept;
};

// LocalValue<T> is the box of a FiberLocal<T> value.
template <class T>
struct LocalValue final : LocalBox {
  template <class... A>
  explicit LocalValue(A&&... a) : LocalBox{{1}, &destroy_value}, value(static_cast<A&&>(a)...) {}
  static void destroy_value(LocalBox* b) noexcept { delete static_cast<LocalValue*>(b); }
  T value;
};

// release_box() drops one reference to `box` (null allowed), destroying the
// value with the last one.
void release_box(LocalBox* box) noexcept;

class FiberCore;
class LocalTable;  // the shared immutable table (src/locals/fiber_local.cpp)

// LocalMap is a fiber's copy-on-write pointer to its LocalTable.
class LocalMap {
 public:
  LocalMap() noexcept = default;
  // Copying shares the table (a null copy when nothing was ever set).
  LocalMap(const LocalMap& o) noexcept : table_(o.table_) {
    if (table_ != nullptr) retain(table_);
  }
  LocalMap& operator=(const LocalMap& o) noexcept {
    LocalMap copy(o);
    std::swap(table_, copy.table_);
    return *this;
  }
  ~LocalMap() {
    if (table_ != nullptr) release(table_);
  }
  // empty() is true when every local has its initial value here.
  bool empty() const noexcept { return table_ == nullptr; }
  // find() is the box holding `key`'s value, or nullptr (initial value).
  const LocalBox* find(std::uint64_t key) const noexcept;
  // exchange() installs `box` (nullptr: back to the initial value) for
  // `key` and returns the previous box (the caller owns it; nullptr when
  // none). Takes ownership of `box` even when it throws (std::bad_alloc).
  LocalBox* exchange(std::uint64_t key, LocalBox* box);

 private:
  static void retain(LocalTable* t) noexcept;
  static void release(LocalTable* t) noexcept;
  LocalTable* table_ = nullptr;
};

// inherit_locals() gives a fiber about to start (fork, fork_daemon) its
// forker's values: a shared table, or nothing to copy. On the forker's stack.
void inherit_locals(FiberCore& child, FiberCore& forker) noexcept;

}  // namespace weft::detail
