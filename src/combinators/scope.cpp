#include <weft/scope.hpp>

#include <weft/detail/fiber_group.hpp>

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
  std::lock_guard lk(lock_);
  children_.push_back(std::move(ref));
}

void Scope::child_failed() noexcept {
  // DESIGN 3.6: the first child failure interrupts the rest.
  if (failed_.exchange(true, std::memory_order_acq_rel)) return;
  detail::FiberCore* self = detail::current_fiber();
  detail::FiberGroup others;
  {
    std::lock_guard lk(lock_);
    for (const detail::FiberRef& c : children_)
      if (c.get() != self) others.add(c);
  }
  others.interrupt(owner_->id());
}

Cause Scope::collect_failures() {
  Cause failures;
  std::lock_guard lk(lock_);
  for (; reported_ < children_.size(); ++reported_) {
    auto& c = children_[reported_];
    if (!c->done()) break;
    // A child interrupted by the scope (or anyone) is not a failure.
    Cause cause = c->exit_cause();
    if (cause.has_failure()) failures = Cause::parallel(std::move(failures), std::move(cause));
  }
  return failures;
}

void Scope::join() {
  for (std::size_t i = 0;; ++i) {
    detail::FiberRef c;
    {
      std::lock_guard lk(lock_);
      if (i >= children_.size()) break;
      c = children_[i];
    }
    c->await_done();
  }
  Cause failures = collect_failures();
  // One: the original exception; several: CauseError (DESIGN 3.6, 3.7).
  if (!failures.empty()) detail::rethrow_cause(failures);
}

Scope::~Scope() {
  detail::FiberGroup children;
  {
    std::lock_guard lk(lock_);
    children = detail::FiberGroup(children_);
  }
  children.stop(owner_->id());
  if (report_unjoined_failures())
    WEFT_ASSERT(std::uncaught_exceptions() > 0, "weft::Scope: a child failure was never joined");
}

bool Scope::report_unjoined_failures() {
  std::vector<detail::FiberRef> unreported;
  {
    std::lock_guard lk(lock_);  // only copies under the spin lock: it prints below
    unreported.assign(children_.begin() + static_cast<std::ptrdiff_t>(reported_), children_.end());
    reported_ = children_.size();
  }
  bool any = false;
  for (const detail::FiberRef& c : unreported) {
    Cause cause = c->exit_cause();  // every child ended: stop() awaited them
    if (!cause.has_failure()) continue;
    any = true;
    std::string child =
        c->name().empty() ? fmt::format("{}", c->id()) : fmt::format("{} '{}'", c->id(), c->name());
    std::fprintf(stderr, "weft::Scope of fiber %s: child %s failed and was never joined:\n%s\n",
                 fmt::format("{}", owner_->id()).c_str(), child.c_str(), cause.pretty().c_str());
  }
  return any;
}

}  // namespace weft
