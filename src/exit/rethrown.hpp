// The calling fiber's memory of the failure rethrow_cause() last rethrew as
// itself, so that Cause::fail() of that exception (it escapes the fiber: a
// parent that joined a failed child) is the child's leaf with its Site, and
// not a new leaf naming the parent. One slot per fiber (FiberControl),
// owner-only, cleared when the fiber ends: no shared state, and it keeps an
// exception alive no longer than the fiber that rethrew it. Defined in
// src/fiber/fiber_core.cpp. A plain thread has a slot of its own (a
// thread-local: it does not migrate), kept until its next rethrow.
#pragma once

#include <weft/cause.hpp>

#include <exception>

namespace weft::detail {

// remember_rethrown() records `leaf` (a fail leaf) in the current fiber.
void remember_rethrown(const Cause& leaf) noexcept;
// recall_rethrown() is the leaf remembered for `error` in the current fiber,
// or the empty cause.
Cause recall_rethrown(const std::exception_ptr& error) noexcept;

}  // namespace weft::detail
