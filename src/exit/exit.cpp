#include "weft/exit.hpp"

namespace weft::detail {

std::string describe_exit_failure(const Cause& cause) {
  return fmt::format("Exit({}: {})", cause.has_failure() ? "failed" : "interrupted", cause);
}

}  // namespace weft::detail
