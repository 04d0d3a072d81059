#include <weft/scope.hpp>

#include <weft/detail/fiber_group.hpp>

#include "fiber/fiber_control.hpp"

#include <fmt/format.h>

#include <cstddef>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

namespace weft {

Scope::Scope() : owner_(detail::current_fiber()) {
  if (owner_ == nullptr) throw std::logic_error("weft::Scope created outside any fiber");
}

void Scope::add(detail::FiberCore* child) {
  child->retain();
  detail::FiberRef ref(child);
  // Nothing allocates or frees under the spin lock (spin_lock.hpp): a full
  // vector is grown outside it and the references moved in under it.
  for (;;) {
    std::vector<detail::FiberRef> grown;
    std::size_t capacity;
    {
      std::lock_guard lk(lock_);
      if (children_.size() < children_.capacity()) {
        children_.push_back(std::move(ref));
        return;
      }
      capacity = children_.capacity();
    }
    grown.reserve(capacity < 8 ? 8 : capacity * 2);
    std::lock_guard lk(lock_);
    if (children_.capacity() >= grown.capacity()) continue;               // grown meanwhile
    for (detail::FiberRef& c : children_) grown.push_back(std::move(c));  // within capacity
    children_.swap(grown);  // the old buffer is freed with `grown`, after unlocking
  }
}

std::vector<detail::FiberRef> Scope::children_from(std::size_t from) {
  std::vector<detail::FiberRef> out;
  for (;;) {
    std::size_t need;
    {
      std::lock_guard lk(lock_);
      need = children_.size() > from ? children_.size() - from : 0;
      if (need <= out.capacity()) {  // copies within the capacity: no allocation
        for (std::size_t i = from; i < children_.size(); ++i) out.push_back(children_[i]);
        return out;
      }
    }
    out.reserve(need + need / 2);
  }
}

void Scope::child_failed() noexcept {
  // DESIGN 3.6: the first child failure interrupts the rest.
  if (failed_.exchange(true, std::memory_order_acq_rel)) return;
  detail::FiberCore* self = detail::current_fiber();
  detail::FiberGroup others;
  for (detail::FiberRef& c : children_from(0))
    if (c.get() != self) others.add(std::move(c));
  others.interrupt(owner_->id());
}

Cause Scope::collect_failures() {
  Cause failures;
  for (const detail::FiberRef& c : children_from(reported_)) {
    if (!c->done()) break;
    ++reported_;
    // A child interrupted by the scope (or anyone) is not a failure.
    Cause cause = c->exit_cause();
    if (cause.has_failure()) failures = Cause::parallel(std::move(failures), std::move(cause));
  }
  return failures;
}

void Scope::join(weft::source_location where) {
  for (std::size_t i = 0;; ++i) {
    detail::FiberRef c;
    {
      std::lock_guard lk(lock_);
      if (i >= children_.size()) break;
      c = children_[i];
    }
    c->await_done(where, "Scope::join");
  }
  Cause failures = collect_failures();
  // One: the original exception; several: CauseError (DESIGN 3.6, 3.7).
  if (!failures.empty()) detail::rethrow_cause(failures);
}

Scope::~Scope() {
  detail::FiberGroup children(children_from(0));
  children.stop(owner_->id());
  if (report_unjoined_failures())
    WEFT_ASSERT(std::uncaught_exceptions() > 0, "weft::Scope: a child failure was never joined");
}

bool Scope::report_unjoined_failures() {
  std::vector<detail::FiberRef> unreported = children_from(reported_);
  reported_ += unreported.size();
  bool any = false;
  for (const detail::FiberRef& c : unreported) {
    Cause cause = c->exit_cause();  // every child ended: stop() awaited them
    if (!cause.has_failure()) continue;
    any = true;
    const std::string& name = detail::control(*c).name();
    std::string child =
        name.empty() ? fmt::format("{}", c->id()) : fmt::format("{} '{}'", c->id(), name);
    std::fprintf(stderr, "weft::Scope of fiber %s: child %s failed and was never joined:\n%s\n",
                 fmt::format("{}", owner_->id()).c_str(), child.c_str(), cause.pretty().c_str());
  }
  return any;
}

}  // namespace weft
