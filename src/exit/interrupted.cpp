#include "weft/interrupted.hpp"

#include <fmt/format.h>

#include <iterator>

namespace weft {
namespace {

std::shared_ptr<const std::string> interrupted_message(const Cause& cause) noexcept {
  try {
    std::string text = "weft::Interrupted";
    std::vector<FiberId> by = cause.interruptors();
    if (!by.empty())
      fmt::format_to(std::back_inserter(text), ": interrupted by {}", fmt::join(by, ", "));
    return std::make_shared<const std::string>(std::move(text));
  } catch (...) {
    return nullptr;  // out of memory: what() falls back to a fixed message
  }
}

}  // namespace

Interrupted::Interrupted(Cause cause) noexcept
    : cause_(std::move(cause)), message_(interrupted_message(cause_)) {}

const char* Interrupted::what() const noexcept {
  return message_ ? message_->c_str() : "weft::Interrupted";
}

}  // namespace weft
