// A small fiber program decoded from bytes, shared by the randomized replay
// stress test (bytes from a seeded generator) and the libFuzzer target
// (bytes from the fuzzer). The program builds a tree of fibers that fork,
// yield, sleep, nest masks and Scopes, install finalizers (some suspend, some
// throw), block on every primitive (Channel, Mutex, Semaphore, Latch,
// Deferred, await, race, timeout) and interrupt each other. run_program()
// then checks the invariants of DESIGN.md §3:
//   - every finalizer ran exactly once, in LIFO order per fiber;
//   - every Exit matches what the fiber did (completed / failed / interrupted
//     only by a fiber that targeted it, its parent or a racer);
//   - no item sent on a channel was lost or duplicated;
//   - no fiber or stack leaked (stats() after the run).
#pragma once

#include <weft/runtime.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace weft::test {

// ProgramResult is what one run observed; `error` is empty when every
// invariant held, else it describes the first violation.
struct ProgramResult {
  std::string error;
  long fibers = 0;          // fibers the program forked
  long finalizers = 0;      // finalizers that ran
  long interrupts = 0;      // interrupt requests made by the program
  long items = 0;           // channel items delivered
  std::uint64_t trace = 0;  // a hash of the order in which fibers took their steps
};

// run_program() decodes `bytes` (any bytes are a valid program; missing
// bytes read as zero) and runs it as one root fiber on `rt`, which must have
// no other live fibers.
ProgramResult run_program(Runtime& rt, std::span<const std::uint8_t> bytes);

}  // namespace weft::test
