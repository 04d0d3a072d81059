// FiberLocal's tables: copy-on-write maps from a FiberLocal's key to an
// immutable, refcounted value box (the shape is in detail/local_map.hpp).
#include <weft/detail/fiber_core.hpp>
#include <weft/fiber_local.hpp>

#include "fiber/fiber_control.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace weft::detail {

// LocalTable is one immutable-once-shared table: entries sorted by key,
// every box non-null and owned (one reference each). Only a table whose one
// holder is the current fiber is changed in place.
class LocalTable {
 public:
  struct Entry {
    std::uint64_t key;
    LocalBox* box;
  };
  LocalTable() = default;
  // A clone shares every value box (one more reference each).
  explicit LocalTable(const LocalTable& o) : entries(o.entries) {
    for (Entry& e : entries) e.box->refs.fetch_add(1, std::memory_order_relaxed);
  }
  LocalTable& operator=(const LocalTable&) = delete;
  ~LocalTable() {
    for (Entry& e : entries) release_box(e.box);
  }
  // slot() is the first entry whose key is not below `key`.
  std::vector<Entry>::iterator slot(std::uint64_t key) {
    return std::lower_bound(entries.begin(), entries.end(), key,
                            [](const Entry& e, std::uint64_t k) { return e.key < k; });
  }

  // refs: relaxed increments (a new holder is made from an existing one);
  // acq_rel decrements and an acquire read before an in-place change, so
  // whoever frees or changes the table sees every other holder's reads done.
  std::atomic<std::uint32_t> refs{1};
  std::vector<Entry> entries;
};

namespace {
std::atomic<std::uint64_t> g_next_local_key{1};  // process-unique, never reused
}  // namespace

void release_box(LocalBox* box) noexcept {
  // acq_rel: the last owner sees every read of the value made elsewhere.
  if (box != nullptr && box->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) box->destroy(box);
}

void LocalMap::retain(LocalTable* t) noexcept { t->refs.fetch_add(1, std::memory_order_relaxed); }

void LocalMap::release(LocalTable* t) noexcept {
  if (t->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete t;
}

const LocalBox* LocalMap::find(std::uint64_t key) const noexcept {
  if (table_ == nullptr) return nullptr;
  auto it = table_->slot(key);
  return it != table_->entries.end() && it->key == key ? it->box : nullptr;
}

LocalBox* LocalMap::exchange(std::uint64_t key, LocalBox* box) {
  if (box == nullptr && find(key) == nullptr) return nullptr;  // already initial
  try {
    if (table_ == nullptr) {
      table_ = new LocalTable();
    } else if (table_->refs.load(std::memory_order_acquire) != 1) {
      // Shared with a fiber forked since (or its forker): copy on write.
      auto* copy = new LocalTable(*table_);
      release(std::exchange(table_, copy));
    }
    auto it = table_->slot(key);
    if (it != table_->entries.end() && it->key == key) {
      LocalBox* previous = it->box;
      if (box != nullptr) {
        it->box = box;
      } else {
        table_->entries.erase(it);
        if (table_->entries.empty())
          release(std::exchange(table_, nullptr));  // forks are free again
      }
      return previous;
    }
    table_->entries.insert(it, LocalTable::Entry{key, box});  // box is non-null here
    return nullptr;
  } catch (...) {
    release_box(box);
    throw;
  }
}

std::uint64_t new_local_key() noexcept {
  return g_next_local_key.fetch_add(1, std::memory_order_relaxed);
}

LocalMap& current_locals() noexcept {
  if (FiberCore* f = current_fiber()) return control(*f).locals();
  // A plain thread's own values (docs: fiber_local.hpp "Plain threads").
  // Read only here, not inlined: see docs/internals.md on thread-locals.
  thread_local LocalMap tls_locals;
  return tls_locals;
}

const LocalBox* find_local(std::uint64_t key) noexcept {
  if (FiberCore* f = current_fiber()) {
    // A read makes no extras: a fiber that never set one has no table.
    const LocalMap* m = control(*f).locals_if_any();
    return m != nullptr ? m->find(key) : nullptr;
  }
  return current_locals().find(key);
}

void restore_local(LocalMap* owner, std::uint64_t key, LocalBox* previous) noexcept {
  LocalMap& mine = current_locals();
  WEFT_CHECK(&mine == owner,
             "a weft::FiberLocal::Scoped was closed on {}, not on the fiber or thread that made it",
             current_id());
  // Restoring may copy a table shared with a child forked in the scope; an
  // allocation failure here terminates (a destructor cannot report it).
  release_box(mine.exchange(key, previous));
}

void inherit_locals(FiberCore& child, FiberCore& forker) noexcept {
  // Nothing to share (the common case): the child makes no extras. Else an
  // allocation failure terminates, as the table copies below may.
  const LocalMap* theirs = control(forker).locals_if_any();
  if (theirs == nullptr || theirs->empty()) return;
  control(child).locals() = *theirs;
}

}  // namespace weft::detail
