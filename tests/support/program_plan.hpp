// The plan of a test program (see program.hpp): a tree of operations decoded
// from bytes. Decoding is static, so whether a region is masked is known
// here and a masked region never gets an operation that could block
// forever (nothing could interrupt it: the program would hang, not fail).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace weft::test {

enum class Op : std::uint8_t {
  yield,
  sleep,           // sleep_for(arg % 50 us)
  compute,         // a CPU loop with check_interrupt()
  mask,            // body under Uninterruptible (or Interruptible inside a mask)
  fork,            // body in a child fiber
  await_kid,       // await one of this fiber's children
  interrupt_kid,   // Fiber::interrupt() (waits for the child to end)
  interrupt_any,   // interrupt_fork() any fiber of the program
  self_interrupt,  // weft::interrupt()
  swallow,         // catch Interrupted around a yield (interrupts are sticky)
  fail,            // throw ProgramFailure
  finalizer,       // OnExit around body: plain, suspending or throwing
  send,            // Channel<long>::send of a unique item
  receive,         // Channel<long>::receive
  lock,            // body with the Mutex held
  acquire,         // body with a Semaphore permit held
  latch,           // count down (within the latch's count) and wait
  deferred_set,    // Deferred<int>::try_succeed(arg)
  deferred_get,    // Deferred<int>::await
  scope,           // a Scope with children, joined
  race,            // race_exit of 2 or 3 contestants
  timeout,         // timeout_exit(arg us, body)
  count_
};

struct Node {
  Op op = Op::yield;
  std::uint8_t arg = 0;
  std::vector<Node> body;  // mask/finalizer/lock/acquire/fork/timeout: the region; scope/race: one
                           // fork node per child
};

struct Plan {
  std::vector<Node> tops;        // the program's top-level fibers (fork nodes)
  std::size_t channel_capacity;  // 0: unbounded
  std::size_t permits;           // the semaphore's
  long latch_count;
  unsigned grace_us;  // how long the root lets the program run before it ends it
};

// decode() turns any bytes into a plan (missing bytes read as zero); the plan
// is bounded: at most 160 operations, 28 fibers, depth 3.
Plan decode(std::span<const std::uint8_t> bytes);

}  // namespace weft::test
