#include "weft/fiber_id.hpp"

#include <ostream>

namespace weft {

// One string, so a stream width applies to the whole "#42".
std::ostream& operator<<(std::ostream& os, FiberId id) { return os << fmt::format("{}", id); }

}  // namespace weft
