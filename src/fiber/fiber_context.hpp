// The private per-fiber execution state kept inside FiberCore's opaque storage.
#pragma once

#include <weft/detail/fiber_core.hpp>

#include "context/context.hpp"
#include "context/stack.hpp"

#include <new>

namespace weft::detail {

// FiberContext is the saved context, the stack and the overflow-report info.
struct FiberContext {
  ExecutionContext ctx{};
  Stack stack{};
  RunningFiberInfo info{};
};
static_assert(sizeof(FiberContext) <= FiberCore::kContextStorage,
              "raise FiberCore::kContextStorage");
static_assert(alignof(FiberContext) <= 16);

// fiber_context() is f's private execution state.
inline FiberContext& fiber_context(FiberCore& f) noexcept {
  return *std::launder(reinterpret_cast<FiberContext*>(f.context_storage()));
}

}  // namespace weft::detail
