// FiberGroup: the one implementation of "interrupt all, then await all
// masked", used wherever a set of fibers must not outlive an operation: a
// fiber's end (its fork children, DESIGN.md 3.5), Scope's destructor (3.6),
// race/all/for_each_par (3.9, 3.11), timeout (3.10), interrupt_all and
// ~Runtime.
//
// Contract:
// - Members are shared references to fibers; an empty reference is a vacant
//   slot, skipped by every operation (a Contest keeps its slots in a group).
// - interrupt(by) requests interruption of every member not yet done, all of
//   them before any wait, so they unwind in parallel. Each member's cause
//   records `by` among its interruptors; a fiber interrupted by two groups
//   records both (DESIGN 3.1). A member that has not started never runs its
//   body (3.2); a masked member keeps the request pending until its
//   outermost region closes (3.3).
// - await_masked() returns once every member has ended, finalizers and
//   children included, and is not interruptible: a fiber parks masked (an
//   interrupt of the caller stays pending for its next yield point), a plain
//   thread blocks. await() is the interruptible form (interrupt_all only).
// - Not synchronised: one owner fills the group and stops it; the members'
//   control blocks stay alive as long as the group holds them.
#pragma once

#include <weft/detail/fiber_core.hpp>
#include <weft/fiber_id.hpp>

#include <chrono>
#include <cstddef>
#include <weft/source_location.hpp>
#include <utility>
#include <vector>

namespace weft::detail {

// FiberGroup is a set of fibers that are interrupted and awaited together.
class FiberGroup {
 public:
  // FiberGroup() is an empty group.
  FiberGroup() noexcept = default;
  // FiberGroup(slots) is a group of `slots` vacant slots, filled by operator[].
  explicit FiberGroup(std::size_t slots) : members_(slots) {}
  // FiberGroup(members) adopts the references (empty ones are vacant slots).
  explicit FiberGroup(std::vector<FiberRef> members) noexcept : members_(std::move(members)) {}

  // add() appends a member.
  void add(FiberRef member) { members_.push_back(std::move(member)); }
  // add() appends `member`, sharing its ownership.
  void add(FiberCore& member) {
    member.retain();
    members_.emplace_back(&member);
  }
  // reserve() makes room for n members.
  void reserve(std::size_t n) { members_.reserve(n); }

  // operator[] is the member in `slot` (an empty reference when vacant).
  FiberRef& operator[](std::size_t slot) noexcept { return members_[slot]; }
  const FiberRef& operator[](std::size_t slot) const noexcept { return members_[slot]; }
  // size() is the number of slots, vacant ones included.
  std::size_t size() const noexcept { return members_.size(); }
  // empty() is true when the group has no slot.
  bool empty() const noexcept { return members_.empty(); }
  // begin()/end() walk the slots in order.
  auto begin() const noexcept { return members_.begin(); }
  auto end() const noexcept { return members_.end(); }

  // interrupt() requests interruption of every member not yet done,
  // attributed to `by`; it does not wait. Any thread.
  void interrupt(FiberId by) const;
  // await_masked() waits for every member's end without being interruptible.
  void await_masked() const noexcept;
  // await_masked_until() is await_masked() with a deadline: the first member
  // (in slot order) still running when it passed, or nullptr if all ended.
  FiberCore* await_masked_until(std::chrono::steady_clock::time_point deadline) const noexcept;
  // await() waits for every member's end, in slot order: an interruptible
  // yield point (throws Interrupted, leaving the rest unawaited).
  // `where` is the caller's line, for dumps.
  void await(weft::source_location where = {}) const;
  // stop() is interrupt(by) then await_masked(): no member outlives the call.
  void stop(FiberId by) const noexcept;

 private:
  std::vector<FiberRef> members_;
};

}  // namespace weft::detail
