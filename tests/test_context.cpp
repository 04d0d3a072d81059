// Tests of the raw context switch (context.hpp) and of stack overflow
// reporting (overflow.hpp).
#include "context/context.hpp"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <latch>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "context/sanitizers.hpp"
#include "context/stack.hpp"
#include "support/scale.hpp"

namespace weft::detail {
namespace {

// ASan and TSan install SIGSEGV handlers of their own at start-up: a fault we
// pass on reaches them, and they report it and exit non-zero instead of the
// process dying of the signal.
constexpr bool kSanitizerHandlesSegv = WEFT_CONTEXT_ASAN != 0 || WEFT_CONTEXT_TSAN != 0;

// std::this_thread::get_id() ends in pthread_self(), declared
// __attribute__((const)): the compiler may reuse its value after a switch that
// migrated the fiber. The asm keeps this wrapper from being treated as const.
__attribute__((noinline)) std::thread::id current_thread() {
  asm volatile("" ::: "memory");
  return std::this_thread::get_id();
}

// A minimal fiber on top of the context API, as the scheduler will use it.
struct TestFiber {
  ExecutionContext ctx;
  Stack stack;
  std::function<void(TestFiber&)> body;
  ExecutionContext* caller = nullptr;  // who resumed us last; we suspend to it
  bool finished = false;

  TestFiber(const Stack& s, std::function<void(TestFiber&)> fn) : stack(s), body(std::move(fn)) {
    context_make(ctx, stack, &TestFiber::entry, this);
  }
  ~TestFiber() { context_destroy(ctx); }

  static void entry(void* arg) {
    auto* self = static_cast<TestFiber*>(arg);
    self->body(*self);
    self->finished = true;
    context_exit(self->ctx, *self->caller);
  }
  void resume(ExecutionContext& from) {
    caller = &from;
    context_switch(from, ctx);
  }
  void suspend() { context_switch(ctx, *caller); }
};

// Fixture: one pool per test; fails when a test leaks a stack.
class ContextTest : public ::testing::Test {
 protected:
  void TearDown() override { EXPECT_EQ(pool_.in_use(), 0u) << "the test leaked stacks"; }
  StackPool pool_{StackPoolOptions{.stack_size = 64 * 1024}};
};

std::string what_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "<not a std::exception>";
  }
}

TEST_F(ContextTest, test_context_ping_pong_between_thread_and_two_fibers) {
  ExecutionContext main_ctx;
  context_init_thread(main_ctx);
  std::vector<int> trace;
  int shared = 0;
  TestFiber* second = nullptr;
  TestFiber first(pool_.acquire(0), [&](TestFiber& self) {
    for (int round = 0; round < 3; ++round) {
      shared += 1;
      trace.push_back(shared);
      second->caller = self.caller;  // second returns to the thread
      context_switch(self.ctx, second->ctx);
    }
  });
  TestFiber second_fiber(pool_.acquire(0), [&](TestFiber& self) {
    for (;;) {
      shared *= 10;
      trace.push_back(shared);
      self.suspend();
    }
  });
  second = &second_fiber;
  for (int round = 0; round < 3; ++round) {
    first.resume(main_ctx);  // thread -> first -> second -> thread
    trace.push_back(-shared);
  }
  first.resume(main_ctx);  // first leaves its loop and exits
  EXPECT_TRUE(first.finished);
  EXPECT_FALSE(second_fiber.finished);
  EXPECT_EQ(trace, (std::vector<int>{1, 10, -10, 11, 110, -110, 111, 1110, -1110}));
  // second never finishes: its stack goes back without running to the end.
  pool_.release(0, first.stack);
  pool_.release(0, second_fiber.stack);
}

TEST_F(ContextTest, test_context_fiber_migrates_to_another_thread) {
  TestFiber fiber(pool_.acquire(StackPool::kNoWorker), [](TestFiber& self) {
    const std::thread::id before = current_thread();
    self.suspend();
    const std::thread::id after = current_thread();
    EXPECT_NE(before, after);
    int local = 42;  // the frame survived the move
    self.suspend();
    EXPECT_EQ(local, 42);
  });
  // Thread a stays alive until b is done, so their ids differ (glibc reuses
  // the id of a joined thread).
  std::latch a_done(1), b_done(1);
  std::thread a([&] {
    ExecutionContext thread_ctx;
    context_init_thread(thread_ctx);
    fiber.resume(thread_ctx);  // runs until the first suspend
    a_done.count_down();
    b_done.wait();
  });
  std::thread b([&] {
    a_done.wait();
    ExecutionContext thread_ctx;
    context_init_thread(thread_ctx);
    fiber.resume(thread_ctx);
    fiber.resume(thread_ctx);  // runs to the end: context_exit lands here
    b_done.count_down();
  });
  a.join();
  b.join();
  EXPECT_TRUE(fiber.finished);
  pool_.release(StackPool::kNoWorker, fiber.stack);
}

TEST_F(ContextTest, test_context_exit_returns_to_the_given_context) {
  ExecutionContext main_ctx;
  context_init_thread(main_ctx);
  bool reached_other = false;
  TestFiber fiber(pool_.acquire(0), [](TestFiber&) {});
  TestFiber hub(pool_.acquire(0), [&](TestFiber& self) {
    fiber.resume(self.ctx);  // the fiber exits into the hub, not into main
    reached_other = true;
  });
  hub.resume(main_ctx);
  EXPECT_TRUE(fiber.finished);
  EXPECT_TRUE(reached_other);
  EXPECT_TRUE(hub.finished);
  pool_.release(0, fiber.stack);
  pool_.release(0, hub.stack);
}

TEST_F(ContextTest, test_context_create_exit_cycles_reuse_stacks) {
  ExecutionContext main_ctx;
  context_init_thread(main_ctx);
  std::set<void*> bases;
  long sum = 0;
  // 2,000 under TSan (scale.hpp), whose fiber create/destroy makes 20,000
  // cycles take 13-29 s: the stack is still handed back 2,000 times.
  constexpr long kCycles = static_cast<long>(test::scaled(20000, 20000, 2000));
  for (long i = 0; i < kCycles; ++i) {
    Stack s = pool_.acquire(0);
    bases.insert(s.base);
    {
      TestFiber fiber(s, [&sum, i](TestFiber&) { sum += i; });
      fiber.resume(main_ctx);
      ASSERT_TRUE(fiber.finished);
      EXPECT_EQ(pool_.in_use(), 1u);
    }
    pool_.release(0, s);
  }
  EXPECT_EQ(sum, kCycles * (kCycles - 1) / 2);
  EXPECT_EQ(bases.size(), 1u) << "the worker cache hands the same stack back";
  EXPECT_EQ(pool_.in_use(), 0u);
}

TEST_F(ContextTest, test_context_saved_exception_globals_match_the_runtime) {
  // The layout assumption (EhGlobals mirrors __cxa_eh_globals), checked from
  // outside: a fiber suspended in a catch block has a caught exception, one
  // suspended while unwinding has exactly one uncaught exception.
  ExecutionContext main_ctx;
  context_init_thread(main_ctx);
  struct SuspendOnDestroy {
    TestFiber* fiber;
    ~SuspendOnDestroy() { fiber->suspend(); }
  };
  TestFiber fiber(pool_.acquire(0), [](TestFiber& self) {
    try {
      throw std::runtime_error("caught");
    } catch (...) {
      self.suspend();  // 1: in a catch block
    }
    try {
      SuspendOnDestroy guard{&self};  // 2: while unwinding
      throw std::runtime_error("unwinding");
    } catch (...) {
    }
  });
  fiber.resume(main_ctx);
  EXPECT_NE(fiber.ctx.eh_caught_exceptions, nullptr);
  EXPECT_EQ(fiber.ctx.eh_uncaught_exceptions, 0u);
  EXPECT_EQ(main_ctx.eh_caught_exceptions, nullptr);
  fiber.resume(main_ctx);
  EXPECT_EQ(fiber.ctx.eh_caught_exceptions, nullptr);
  EXPECT_EQ(fiber.ctx.eh_uncaught_exceptions, 1u);
  fiber.resume(main_ctx);
  EXPECT_TRUE(fiber.finished);
  pool_.release(0, fiber.stack);
}

TEST_F(ContextTest, test_context_catch_block_keeps_its_exception_across_switches) {
  // A fiber suspends inside a catch block; the thread throws and catches its
  // own exception meanwhile; the fiber resumes (on another thread) and still
  // sees -- and rethrows -- its own.
  std::vector<std::string> seen;
  TestFiber fiber(pool_.acquire(StackPool::kNoWorker), [&seen](TestFiber& self) {
    try {
      throw std::runtime_error("fiber");
    } catch (...) {
      seen.push_back(what_of(std::current_exception()));
      self.suspend();
      seen.push_back(what_of(std::current_exception()));
      self.suspend();
      try {
        throw;  // rethrows the fiber's exception, not the thread's
      } catch (const std::runtime_error& e) {
        seen.push_back(std::string("rethrown ") + e.what());
      }
    }
    seen.push_back(std::current_exception() ? "leaked" : "none");
  });
  std::thread a([&] {
    ExecutionContext thread_ctx;
    context_init_thread(thread_ctx);
    fiber.resume(thread_ctx);
    // The fiber is parked in its catch block: this thread has no exception.
    seen.push_back(std::current_exception() ? "thread sees one" : "thread sees none");
    try {
      throw std::logic_error("thread a");
    } catch (...) {
      seen.push_back(what_of(std::current_exception()));
    }
  });
  a.join();
  std::thread b([&] {
    ExecutionContext thread_ctx;
    context_init_thread(thread_ctx);
    try {
      throw std::logic_error("thread b");
    } catch (...) {
      fiber.resume(thread_ctx);  // the fiber sees its own exception
      seen.push_back(what_of(std::current_exception()));
      try {
        throw;
      } catch (const std::logic_error& e) {
        seen.push_back(std::string("rethrown ") + e.what());
      }
      fiber.resume(thread_ctx);  // the fiber rethrows its own and finishes
      seen.push_back(what_of(std::current_exception()));
    }
    seen.push_back(std::current_exception() ? "leaked" : "none");
  });
  b.join();
  EXPECT_TRUE(fiber.finished);
  EXPECT_EQ(seen, (std::vector<std::string>{"fiber", "thread sees none", "thread a", "fiber",
                                            "thread b", "rethrown thread b", "rethrown fiber",
                                            "none", "thread b", "none"}));
  pool_.release(StackPool::kNoWorker, fiber.stack);
}

TEST_F(ContextTest, test_context_uncaught_exceptions_is_per_context_during_unwinding) {
  // A destructor running during unwinding suspends: it keeps seeing 1
  // uncaught exception, while the context that runs meanwhile sees 0 -- or its
  // own 1 when it is itself unwinding.
  ExecutionContext main_ctx;
  context_init_thread(main_ctx);
  std::vector<int> counts;
  struct SuspendOnDestroy {
    TestFiber* fiber;
    std::vector<int>* counts;
    ~SuspendOnDestroy() {
      counts->push_back(std::uncaught_exceptions());
      fiber->suspend();
      counts->push_back(std::uncaught_exceptions());
      fiber->suspend();
      counts->push_back(std::uncaught_exceptions());
    }
  };
  TestFiber fiber(pool_.acquire(0), [&counts](TestFiber& self) {
    try {
      SuspendOnDestroy guard{&self, &counts};
      throw std::runtime_error("unwinding");
    } catch (const std::runtime_error&) {
      counts.push_back(100 + std::uncaught_exceptions());
    }
  });
  fiber.resume(main_ctx);
  counts.push_back(std::uncaught_exceptions());  // the thread: 0
  struct ResumeOnDestroy {
    TestFiber* fiber;
    ExecutionContext* ctx;
    std::vector<int>* counts;
    ~ResumeOnDestroy() {
      counts->push_back(10 + std::uncaught_exceptions());  // the thread unwinding: 1
      fiber->resume(*ctx);
      counts->push_back(10 + std::uncaught_exceptions());
    }
  };
  try {
    ResumeOnDestroy guard{&fiber, &main_ctx, &counts};
    throw std::logic_error("thread unwinding");
  } catch (const std::logic_error&) {
  }
  counts.push_back(std::uncaught_exceptions());
  fiber.resume(main_ctx);  // the fiber's destructor finishes, its catch runs
  counts.push_back(std::uncaught_exceptions());
  EXPECT_TRUE(fiber.finished);
  EXPECT_EQ(counts, (std::vector<int>{1, 0, 11, 1, 11, 0, 1, 100, 0}));
  pool_.release(0, fiber.stack);
}

TEST_F(ContextTest, test_context_running_fiber_is_thread_local) {
  Stack s = pool_.acquire(0);
  RunningFiberInfo info{&s, 3, "t"};
  set_running_fiber(&info);
  EXPECT_EQ(running_fiber(), &info);
  std::thread([] { EXPECT_EQ(running_fiber(), nullptr); }).join();
  set_running_fiber(nullptr);
  EXPECT_EQ(running_fiber(), nullptr);
  pool_.release(0, s);
}

TEST_F(ContextTest, test_context_canary_catches_an_overflowing_fiber) {
  // A fiber on a canary stack writes below its base; the switch-out check
  // (what the scheduler does) sees it.
  StackPool pool(StackPoolOptions{.stack_size = 64 * 1024, .guard_pages = false});
  ExecutionContext main_ctx;
  context_init_thread(main_ctx);
  Stack s = pool.acquire(0);
  ASSERT_FALSE(s.guarded);
  TestFiber fiber(s, [](TestFiber& self) {
    // Stand-in for a frame that spills past the bottom (a deep recursion
    // would trample the neighbour stack in the slab, which is free here).
    std::memset(static_cast<char*>(self.stack.base) - 16, 0xAB, 32);
    self.suspend();
  });
  fiber.resume(main_ctx);
  EXPECT_FALSE(stack_canary_intact(s));  // the scheduler would report_canary_overflow()
  pool.release(0, s);
}

// --- Death tests -----------------------------------------------------------

// Death tests re-execute the binary ("threadsafe" style): safe with the
// threads other tests start, and the child starts with no handler installed.
class ContextDeathTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

// Recursion the optimiser cannot flatten: each frame keeps a buffer live.
// The limit (never reached: the stack is far smaller) is opaque to it.
volatile int recursion_limit = 1 << 30;
__attribute__((noinline)) int recurse(int depth) {
  volatile char frame[256];
  frame[0] = static_cast<char>(depth);
  if (depth >= recursion_limit) return frame[0];
  return recurse(depth + 1) + frame[0];
}

struct OverflowFiberArgs {
  ExecutionContext* fiber_ctx;
  ExecutionContext* back;
  const RunningFiberInfo* info;
};

void overflowing_fiber_entry(void* raw) {
  auto* args = static_cast<OverflowFiberArgs*>(raw);
  set_running_fiber(args->info);
  recurse(0);
  context_exit(*args->fiber_ctx, *args->back);
}

// Runs in the death-test child: a guarded fiber named 'deep', id 7, recurses.
void overflow_a_guarded_fiber() {
  install_overflow_handler_for_thread();
  StackPool pool(StackPoolOptions{.stack_size = 64 * 1024});
  Stack s = pool.acquire(0);
  if (!s.guarded) std::abort();
  RunningFiberInfo info{&s, 7, "deep"};
  ExecutionContext main_ctx, fiber_ctx;
  context_init_thread(main_ctx);
  OverflowFiberArgs args{&fiber_ctx, &main_ctx, &info};
  context_make(fiber_ctx, s, &overflowing_fiber_entry, &args);
  context_switch(main_ctx, fiber_ctx);
}

// wild_address() is an address in a PROT_NONE page of its own: a write
// faults like a wild pointer would, without tripping UBSan's null check.
volatile int* wild_address() {
  // The middle of a 16 MiB reservation: far from any stack's guard range
  // (a fresh small mapping may land right below a stack).
  constexpr std::size_t kSize = 16u << 20;
  void* p = ::mmap(nullptr, kSize, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) std::abort();
  return reinterpret_cast<volatile int*>(static_cast<char*>(p) + kSize / 2);
}

void null_write_fiber_entry(void* raw) {
  auto* args = static_cast<OverflowFiberArgs*>(raw);
  set_running_fiber(args->info);
  volatile int* volatile target = wild_address();
  *target = 1;  // a plain bug, not an overflow
  context_exit(*args->fiber_ctx, *args->back);
}

// Runs in the death-test child: a guarded fiber writes through a null pointer.
void null_write_in_a_fiber() {
  install_overflow_handler_for_thread();
  StackPool pool(StackPoolOptions{.stack_size = 64 * 1024});
  Stack s = pool.acquire(0);
  RunningFiberInfo info{&s, 8, "buggy"};
  ExecutionContext main_ctx, fiber_ctx;
  context_init_thread(main_ctx);
  OverflowFiberArgs args{&fiber_ctx, &main_ctx, &info};
  context_make(fiber_ctx, s, &null_write_fiber_entry, &args);
  context_switch(main_ctx, fiber_ctx);
}

// A matcher for death-test output that must NOT contain a string.
class LacksSubstring : public ::testing::MatcherInterface<const std::string&> {
 public:
  explicit LacksSubstring(std::string s) : needle_(std::move(s)) {}
  bool MatchAndExplain(const std::string& text,
                       ::testing::MatchResultListener* /*listener*/) const override {
    return text.find(needle_) == std::string::npos;
  }
  void DescribeTo(std::ostream* os) const override { *os << "does not contain " << needle_; }

 private:
  std::string needle_;
};
::testing::Matcher<const std::string&> lacks(std::string s) {
  return ::testing::MakeMatcher(new LacksSubstring(std::move(s)));
}

// Death by SIGSEGV -- or, under a sanitizer, its SEGV report and a non-zero
// exit.
bool died_of_segv(int status) {
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV) return true;
  // ASan with abort_on_error=1 aborts after its report.
  return kSanitizerHandlesSegv && ((WIFEXITED(status) && WEXITSTATUS(status) != 0) ||
                                   (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT));
}

TEST_F(ContextDeathTest, test_context_guard_page_overflow_is_reported_with_fiber_id_and_name) {
  EXPECT_DEATH(overflow_a_guarded_fiber(),
               "weft: fiber stack overflow in fiber #7 'deep' \\(stack [0-9]+ bytes\\); raise "
               "ForkOptions::stack_size or RuntimeOptions::stack_size");
}

TEST_F(ContextDeathTest, test_context_null_write_in_a_fiber_is_not_claimed) {
  EXPECT_EXIT(null_write_in_a_fiber(), died_of_segv, lacks("stack overflow"));
}

TEST_F(ContextDeathTest, test_context_previous_segv_handler_is_chained_for_other_faults) {
  EXPECT_EXIT(
      {
        struct sigaction user {};
        user.sa_handler = [](int) {
          const char msg[] = "user handler saw the fault\n";
          if (::write(STDERR_FILENO, msg, sizeof msg - 1) < 0) _exit(43);
          _exit(42);
        };
        sigemptyset(&user.sa_mask);
        ::sigaction(SIGSEGV, &user, nullptr);
        null_write_in_a_fiber();  // installs ours on top, then faults
      },
      ::testing::ExitedWithCode(42), "user handler saw the fault");
}

TEST_F(ContextDeathTest, test_context_guard_fault_outside_any_fiber_is_not_claimed) {
  // The guard page of a stack no fiber runs on: an ordinary wild write.
  EXPECT_EXIT(
      {
        install_overflow_handler_for_thread();
        StackPool pool(StackPoolOptions{.stack_size = 64 * 1024});
        Stack s = pool.acquire(0);
        set_running_fiber(nullptr);
        static_cast<volatile char*>(s.base)[-1] = 1;
      },
      died_of_segv, lacks("stack overflow"));
}

TEST_F(ContextDeathTest, test_context_canary_report_names_the_fiber) {
  EXPECT_DEATH(report_canary_overflow(3, "small", 16320),
               "weft: fiber stack overflow in fiber #3 'small' \\(stack 16320 bytes\\) "
               "\\(detected by canary\\); raise ForkOptions::stack_size");
}

TEST_F(ContextDeathTest, test_context_unnamed_fiber_report_omits_the_name) {
  EXPECT_DEATH(report_canary_overflow(12, nullptr, 65472),
               "fiber stack overflow in fiber #12 \\(stack 65472 bytes\\)");
}

}  // namespace
}  // namespace weft::detail
