#include "runtime/debug_registry.hpp"

#include <mutex>

namespace weft::detail {

DebugRegistration* debug_runtimes = nullptr;

namespace {
// Function-local: a runtime built during static initialisation of another
// translation unit still finds the mutex constructed.
std::mutex& registry_mutex() {
  static std::mutex mu;
  return mu;
}
}  // namespace

DebugRegistration::DebugRegistration(Scheduler* s) : scheduler(s) {
  std::lock_guard lk(registry_mutex());
  next = debug_runtimes;
  if (next != nullptr) next->prev = this;
  debug_runtimes = this;
}

DebugRegistration::~DebugRegistration() {
  std::lock_guard lk(registry_mutex());
  if (prev != nullptr)
    prev->next = next;
  else
    debug_runtimes = next;
  if (next != nullptr) next->prev = prev;
}

}  // namespace weft::detail
