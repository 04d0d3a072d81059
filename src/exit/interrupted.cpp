#include "weft/interrupted.hpp"

#include <fmt/format.h>

#include <iterator>
#include <memory>

namespace weft {
namespace {

std::string* interrupted_message(const Cause& cause) noexcept {
  try {
    auto text = std::make_unique<std::string>("weft::Interrupted");
    std::vector<FiberId> by = cause.interruptors();
    if (!by.empty())
      fmt::format_to(std::back_inserter(*text), ": interrupted by {}", fmt::join(by, ", "));
    return text.release();
  } catch (...) {
    return nullptr;  // out of memory: what() falls back to a fixed message
  }
}

}  // namespace

Interrupted::Interrupted(Cause cause) noexcept : cause_(std::move(cause)) {
  try {
    message_ = std::make_shared<Message>();
  } catch (...) {
    // out of memory: what() gives the fixed message
  }
}

const char* Interrupted::what() const noexcept {
  if (!message_) return "weft::Interrupted";
  const std::string* text = message_->text.load(std::memory_order_acquire);
  if (text == nullptr) {
    std::string* built = interrupted_message(cause_);
    if (built == nullptr) return "weft::Interrupted";
    // Two threads may build it at once: the first to publish wins.
    if (message_->text.compare_exchange_strong(text, built, std::memory_order_acq_rel))
      text = built;
    else
      delete built;
  }
  return text->c_str();
}

}  // namespace weft
