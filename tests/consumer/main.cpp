// Uses weft the way a downstream project does: the installed umbrella header
// and the weft::weft target. Exit status 0 when a root fiber's value arrives.
#include <weft/weft.hpp>

int main() {
  weft::Runtime rt;
  auto e = rt.block_on([] { return 42; });
  return e.ok() && e.value() == 42 ? 0 : 1;
}
