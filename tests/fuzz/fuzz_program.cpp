// libFuzzer target: every input is a small fiber program (fork, interrupt,
// masks, yields, channels and the other primitives; tests/support/program.hpp)
// that run_program() executes and checks against the invariants of DESIGN.md
// §3: finalizers exactly once and LIFO, each Exit matches what its fiber did,
// no channel item lost or duplicated, no fiber or stack leaked. A violated
// invariant aborts with its description; ASan+UBSan catch memory errors and
// undefined behaviour on the way.
//
// Each input runs on a fresh deterministic 2-worker Runtime seeded from the
// input's bytes, so a crash file replays its exact interleaving. With
// WEFT_FUZZ_THREADS=1 in the environment every input runs on one shared
// Runtime with 2 real worker threads instead (true parallelism, not replayable).
//
// ctest runs it for 60 s (the fuzz preset); tests/fuzz/README.md has the
// longer run and how to replay a crash file, e.g.
//   build/fuzz/fuzz_program -max_total_time=3600 /tmp/weft-corpus tests/fuzz/corpus
#include "support/program.hpp"

#include <weft/runtime.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

namespace {

weft::RuntimeOptions options(bool deterministic, std::uint64_t seed) {
  weft::RuntimeOptions o;
  o.workers = 2;
  o.deterministic = deterministic;
  o.seed = seed;
  o.name = "fuzz";
  return o;
}

// fnv1a() is the input's schedule seed: any change to the bytes reschedules.
std::uint64_t fnv1a(std::span<const std::uint8_t> bytes) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::uint8_t b : bytes) h = (h ^ b) * 0x100000001b3ull;
  return h;
}

weft::test::ProgramResult run(std::span<const std::uint8_t> bytes) {
  static const char* const threads = std::getenv("WEFT_FUZZ_THREADS");
  if (threads != nullptr && threads[0] == '1') {
    static weft::Runtime shared(options(false, 0));
    return weft::test::run_program(shared, bytes);
  }
  weft::Runtime rt(options(true, fnv1a(bytes)));
  return weft::test::run_program(rt, bytes);
}

}  // namespace

// A UBSan report is a finding, not a warning to scroll past (UBSAN_OPTIONS
// still overrides this).
extern "C" const char* __ubsan_default_options() { return "halt_on_error=1:print_stacktrace=1"; }

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const weft::test::ProgramResult result = run(std::span<const std::uint8_t>(data, size));
  if (!result.error.empty()) {
    std::fprintf(stderr, "fuzz_program: invariant violated: %s\n", result.error.c_str());
    std::abort();
  }
  return 0;
}
