// Tests for FiberId, Cause, CauseError and Interrupted (DESIGN §1, §5).
#include "weft/cause.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <pthread.h>

#include <algorithm>
#include <functional>
#include <latch>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <unordered_set>

#include "weft/fiber_id.hpp"
#include "weft/interrupted.hpp"

namespace weft_test {

struct ExitCode {  // a failure type that is not a std::exception
  int code;
};

struct DerivedError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace weft_test

namespace {

using weft::Cause;
using weft::CauseKind;
using weft::FiberId;
using weft_test::DerivedError;
using weft_test::ExitCode;

template <class E>
std::exception_ptr error(E e) {
  return std::make_exception_ptr(std::move(e));
}

Cause fail(const char* message) { return Cause::fail(error(std::runtime_error(message))); }

std::string what_of(const std::exception_ptr& p) {
  try {
    std::rethrow_exception(p);
  } catch (const std::exception& e) {
    return e.what();
  }
}

std::vector<std::string> messages(const Cause& cause) {
  std::vector<std::string> out;
  for (const auto& p : cause.failures()) out.push_back(what_of(p));
  return out;
}

// run_on_small_stack() runs f on a thread with a fiber-sized stack (256 KiB),
// so a recursive walk of a deep cause would crash the test.
void run_on_small_stack(std::function<void()> f) {
  pthread_attr_t attr;
  ASSERT_EQ(pthread_attr_init(&attr), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attr, 256 * 1024), 0);
  pthread_t thread;
  auto body = [](void* arg) -> void* {
    (*static_cast<std::function<void()>*>(arg))();
    return nullptr;
  };
  ASSERT_EQ(pthread_create(&thread, &attr, body, &f), 0);
  ASSERT_EQ(pthread_join(thread, nullptr), 0);
  pthread_attr_destroy(&attr);
}

// ---------------------------------------------------------------- FiberId

TEST(FiberId, test_fiber_id_default_is_no_fiber) {
  static_assert(!FiberId());
  static_assert(FiberId().value() == 0);
  static_assert(static_cast<bool>(FiberId(1)));
  static_assert(sizeof(FiberId) == sizeof(std::uint64_t));
  EXPECT_FALSE(FiberId());
  EXPECT_EQ(FiberId(), FiberId(0));
  EXPECT_EQ(FiberId(42).value(), 42u);
}

TEST(FiberId, test_fiber_id_is_ordered_and_comparable) {
  static_assert(FiberId(1) < FiberId(2));
  EXPECT_LT(FiberId(3), FiberId(7));
  EXPECT_GT(FiberId(7), FiberId(3));
  EXPECT_NE(FiberId(3), FiberId(7));
  EXPECT_EQ(FiberId(7), FiberId(7));
  EXPECT_EQ(FiberId(7) <=> FiberId(9), std::strong_ordering::less);
}

TEST(FiberId, test_fiber_id_hashes_into_unordered_set) {
  std::unordered_set<FiberId> ids;
  for (std::uint64_t i = 1; i <= 100; ++i) ids.insert(FiberId(i));
  ids.insert(FiberId(5));
  EXPECT_EQ(ids.size(), 100u);
  EXPECT_TRUE(ids.contains(FiberId(42)));
  EXPECT_FALSE(ids.contains(FiberId(101)));
  EXPECT_EQ(std::hash<FiberId>{}(FiberId(9)), std::hash<FiberId>{}(FiberId(9)));
}

TEST(FiberId, test_fiber_id_formats_with_fmt_and_ostream) {
  EXPECT_EQ(fmt::format("{}", FiberId(42)), "#42");
  EXPECT_EQ(fmt::format("{}", FiberId()), "#none");
  EXPECT_EQ(fmt::format("{}", FiberId(UINT64_MAX)), "#18446744073709551615");
  EXPECT_EQ(fmt::format("[{:>5}]", FiberId(42)), "[  #42]");
  std::ostringstream os;
  os << FiberId(42) << ' ' << FiberId();
  EXPECT_EQ(os.str(), "#42 #none");
}

// ---------------------------------------------------------------- Cause

constinit Cause kStaticEmpty;  // compiles only if the empty cause needs no dynamic init

TEST(Cause, test_cause_default_is_empty) {
  static_assert(std::is_nothrow_default_constructible_v<Cause>);
  Cause c;
  EXPECT_TRUE(c.empty());
  EXPECT_TRUE(kStaticEmpty.empty());
  EXPECT_EQ(c.kind(), CauseKind::empty);
  EXPECT_TRUE(c.failures().empty());
  EXPECT_TRUE(c.interruptors().empty());
  EXPECT_FALSE(c.has_failure());
  EXPECT_FALSE(c.has_interrupt());
  EXPECT_FALSE(c.interrupted_only());
  EXPECT_EQ(c.exception(), nullptr);
  EXPECT_EQ(c.interruptor(), FiberId());
  EXPECT_TRUE(c.note().empty());
  EXPECT_TRUE(c.left().empty());
  EXPECT_TRUE(c.right().empty());
  EXPECT_EQ(c.failure<std::exception>(), nullptr);
}

TEST(Cause, test_cause_fail_holds_the_exception) {
  std::exception_ptr boom = error(std::runtime_error("boom"));
  Cause c = Cause::fail(boom);
  EXPECT_FALSE(c.empty());
  EXPECT_EQ(c.kind(), CauseKind::fail);
  EXPECT_EQ(c.exception(), boom);
  EXPECT_TRUE(c.note().empty());
  EXPECT_TRUE(c.has_failure());
  EXPECT_FALSE(c.has_interrupt());
  EXPECT_FALSE(c.interrupted_only());
  ASSERT_EQ(c.failures().size(), 1u);
  EXPECT_EQ(c.failures()[0], boom);
  EXPECT_TRUE(c.interruptors().empty());
  EXPECT_EQ(c.interruptor(), FiberId());
  EXPECT_TRUE(c.left().empty());
}

TEST(Cause, test_cause_fail_keeps_its_note) {
  Cause c = Cause::fail(error(std::logic_error("x")), "in finalizer");
  EXPECT_EQ(c.note(), "in finalizer");
  std::string note = "temporary";
  Cause d = Cause::fail(error(1), note);
  note = "changed";
  EXPECT_EQ(d.note(), "temporary");  // the note is copied into the cause
}

TEST(Cause, test_cause_fail_rejects_a_null_exception) {
  EXPECT_THROW((void)Cause::fail(nullptr), std::invalid_argument);
}

TEST(Cause, test_cause_interrupt_holds_the_interruptor) {
  Cause c = Cause::interrupt(FiberId(7));
  EXPECT_EQ(c.kind(), CauseKind::interrupt);
  EXPECT_EQ(c.interruptor(), FiberId(7));
  EXPECT_EQ(c.exception(), nullptr);
  EXPECT_TRUE(c.has_interrupt());
  EXPECT_FALSE(c.has_failure());
  EXPECT_TRUE(c.interrupted_only());
  EXPECT_EQ(c.interruptors(), std::vector<FiberId>{FiberId(7)});
  EXPECT_TRUE(c.failures().empty());
  EXPECT_TRUE(Cause::interrupt(FiberId()).interrupted_only());  // from a plain thread
}

TEST(Cause, test_cause_sequential_and_parallel_build_nodes) {
  Cause a = fail("a");
  Cause b = Cause::interrupt(FiberId(2));
  Cause s = Cause::sequential(a, b);
  Cause p = Cause::parallel(a, b);
  EXPECT_EQ(s.kind(), CauseKind::sequential);
  EXPECT_EQ(p.kind(), CauseKind::parallel);
  EXPECT_EQ(s.left().exception(), a.exception());
  EXPECT_EQ(s.right().interruptor(), FiberId(2));
  EXPECT_EQ(p.left().exception(), a.exception());
  EXPECT_EQ(p.right().interruptor(), FiberId(2));
  EXPECT_EQ(s.exception(), nullptr);
  EXPECT_EQ(s.interruptor(), FiberId());
  EXPECT_TRUE(s.has_failure() && s.has_interrupt() && !s.interrupted_only());
}

TEST(Cause, test_cause_sequential_with_empty_operand_returns_the_other) {
  Cause inner = Cause::parallel(fail("a"), fail("b"));
  Cause left_empty = Cause::sequential(Cause(), inner);
  Cause right_empty = Cause::sequential(inner, Cause());
  // No new node: the result is the operand itself (same children, same addresses).
  EXPECT_EQ(left_empty.kind(), CauseKind::parallel);
  EXPECT_EQ(&left_empty.left(), &inner.left());
  EXPECT_EQ(&right_empty.right(), &inner.right());
  EXPECT_TRUE(Cause::sequential(Cause(), Cause()).empty());
  Cause leaf = fail("leaf");
  EXPECT_EQ(Cause::sequential(Cause(), leaf).exception(), leaf.exception());
  EXPECT_EQ(Cause::sequential(Cause(), leaf).kind(), CauseKind::fail);
}

TEST(Cause, test_cause_parallel_with_empty_operand_returns_the_other) {
  Cause inner = Cause::sequential(fail("a"), Cause::interrupt(FiberId(4)));
  Cause left_empty = Cause::parallel(Cause(), inner);
  Cause right_empty = Cause::parallel(inner, Cause());
  EXPECT_EQ(left_empty.kind(), CauseKind::sequential);
  EXPECT_EQ(&left_empty.left(), &inner.left());
  EXPECT_EQ(&right_empty.left(), &inner.left());
  EXPECT_TRUE(Cause::parallel(Cause(), Cause()).empty());
  EXPECT_EQ(Cause::parallel(Cause::interrupt(FiberId(3)), Cause()).interruptor(), FiberId(3));
}

TEST(Cause, test_cause_failures_and_interruptors_are_depth_first_left_to_right) {
  // Parallel(Sequential(F1, Parallel(I3, F2)), Sequential(I5, Sequential(F3, I3)))
  Cause tree = Cause::parallel(
      Cause::sequential(fail("1"), Cause::parallel(Cause::interrupt(FiberId(3)), fail("2"))),
      Cause::sequential(Cause::interrupt(FiberId(5)),
                        Cause::sequential(fail("3"), Cause::interrupt(FiberId(3)))));
  EXPECT_EQ(messages(tree), (std::vector<std::string>{"1", "2", "3"}));
  // Every recorded interrupter, in order, duplicates kept.
  EXPECT_EQ(tree.interruptors(), (std::vector<FiberId>{FiberId(3), FiberId(5), FiberId(3)}));
  // Right-nested and left-nested trees give the same order.
  Cause left_deep = Cause::sequential(Cause::sequential(fail("a"), fail("b")), fail("c"));
  Cause right_deep = Cause::sequential(fail("a"), Cause::sequential(fail("b"), fail("c")));
  EXPECT_EQ(messages(left_deep), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(messages(right_deep), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(Cause, test_cause_flags_summarise_the_whole_tree) {
  Cause interrupts = Cause::parallel(Cause::interrupt(FiberId(1)), Cause::interrupt(FiberId(2)));
  EXPECT_TRUE(interrupts.interrupted_only());
  EXPECT_FALSE(interrupts.has_failure());
  Cause mixed = Cause::sequential(interrupts, Cause::fail(error(1), "in finalizer"));
  EXPECT_TRUE(mixed.has_failure());
  EXPECT_TRUE(mixed.has_interrupt());
  EXPECT_FALSE(mixed.interrupted_only());
  Cause failures = Cause::parallel(fail("x"), fail("y"));
  EXPECT_TRUE(failures.has_failure());
  EXPECT_FALSE(failures.has_interrupt());
  EXPECT_FALSE(failures.interrupted_only());
}

TEST(Cause, test_cause_failure_finds_a_type_not_derived_from_std_exception) {
  Cause c = Cause::sequential(Cause::interrupt(FiberId(1)),
                              Cause::parallel(fail("other"), Cause::fail(error(ExitCode{3}))));
  const ExitCode* code = c.failure<ExitCode>();
  ASSERT_NE(code, nullptr);
  EXPECT_EQ(code->code, 3);
  // It points into the exception the cause holds (the same object every time).
  EXPECT_EQ(c.failure<ExitCode>(), code);
  EXPECT_EQ(Cause::fail(error(42)).failure<int>() != nullptr, true);
  EXPECT_EQ(*Cause::fail(error(42)).failure<int>(), 42);
}

TEST(Cause, test_cause_failure_finds_a_derived_class_in_order) {
  Cause c = Cause::sequential(Cause::fail(error(std::logic_error("logic"))),
                              Cause::fail(error(DerivedError("derived"))));
  const std::runtime_error* runtime = c.failure<std::runtime_error>();
  ASSERT_NE(runtime, nullptr);
  EXPECT_STREQ(runtime->what(), "derived");
  EXPECT_NE(dynamic_cast<const DerivedError*>(runtime), nullptr);
  ASSERT_NE(c.failure<DerivedError>(), nullptr);
  EXPECT_EQ(static_cast<const void*>(c.failure<DerivedError>()), static_cast<const void*>(runtime));
  // The first match wins: both derive from std::exception, the logic_error is first.
  ASSERT_NE(c.failure<std::exception>(), nullptr);
  EXPECT_STREQ(c.failure<std::exception>()->what(), "logic");
}

TEST(Cause, test_cause_failure_is_null_when_absent) {
  Cause c = Cause::parallel(fail("a"), Cause::interrupt(FiberId(2)));
  EXPECT_EQ(c.failure<ExitCode>(), nullptr);
  EXPECT_EQ(c.failure<std::logic_error>(), nullptr);
  EXPECT_EQ(Cause::interrupt(FiberId(1)).failure<std::exception>(), nullptr);
  EXPECT_EQ(Cause().failure<ExitCode>(), nullptr);
}

TEST(Cause, test_cause_failure_pointer_lives_as_long_as_a_copy) {
  const ExitCode* code = nullptr;
  Cause copy;
  {
    Cause original = Cause::fail(error(ExitCode{9}));
    code = original.failure<ExitCode>();
    copy = original;
  }  // original is gone; the copy keeps the exception object alive
  ASSERT_NE(code, nullptr);
  EXPECT_EQ(copy.failure<ExitCode>(), code);
  EXPECT_EQ(code->code, 9);
}

TEST(Cause, test_cause_copy_shares_the_tree) {
  static_assert(sizeof(Cause) == sizeof(std::shared_ptr<const int>));
  static_assert(std::is_nothrow_copy_constructible_v<Cause>);
  static_assert(std::is_nothrow_move_constructible_v<Cause>);
  Cause original = Cause::sequential(fail("a"), Cause::interrupt(FiberId(1)));
  Cause copy = original;
  EXPECT_EQ(&copy.left(), &original.left());  // same node, not a deep copy
  EXPECT_EQ(&copy.right(), &original.right());
  EXPECT_EQ(copy.left().exception(), original.left().exception());
  Cause moved = std::move(copy);
  EXPECT_EQ(&moved.left(), &original.left());
}

TEST(Cause, test_cause_pretty_prints_the_tree) {
  Cause c =
      Cause::sequential(Cause::fail(error(std::runtime_error("boom"))),
                        Cause::fail(error(std::logic_error("cleanup failed")), "in finalizer"));
  EXPECT_EQ(c.pretty(),
            "Sequential\n"
            "├─ Fail: std::runtime_error: boom\n"
            "└─ Fail (in finalizer): std::logic_error: cleanup failed");
}

TEST(Cause, test_cause_pretty_nests_and_flattens) {
  Cause c = Cause::parallel(
      Cause::sequential(Cause::sequential(fail("a"), Cause::interrupt(FiberId(7))), fail("b")),
      Cause::parallel(Cause::fail(error(ExitCode{1})), Cause::fail(error(5))));
  EXPECT_EQ(c.pretty(),
            "Parallel\n"
            "├─ Sequential\n"
            "│  ├─ Fail: std::runtime_error: a\n"
            "│  ├─ Interrupted by #7\n"
            "│  └─ Fail: std::runtime_error: b\n"
            "├─ Fail: weft_test::ExitCode\n"
            "└─ Fail: int");
}

TEST(Cause, test_cause_pretty_of_leaves_and_empty) {
  EXPECT_EQ(Cause().pretty(), "(empty)");
  EXPECT_EQ(Cause::interrupt(FiberId(7)).pretty(), "Interrupted by #7");
  EXPECT_EQ(Cause::interrupt(FiberId()).pretty(), "Interrupted by #none");
  EXPECT_EQ(Cause::fail(error(DerivedError("oops"))).pretty(),
            "Fail: weft_test::DerivedError: oops");
}

TEST(Cause, test_cause_pretty_indents_multi_line_messages) {
  Cause c = Cause::parallel(fail("line 1\nline 2"), fail("x"));
  EXPECT_EQ(c.pretty(),
            "Parallel\n"
            "├─ Fail: std::runtime_error: line 1\n"
            "│  line 2\n"
            "└─ Fail: std::runtime_error: x");
}

TEST(Cause, test_cause_formats_on_one_line) {
  Cause boom = Cause::fail(error(std::runtime_error("boom")));
  Cause three = Cause::interrupt(FiberId(3));
  EXPECT_EQ(fmt::format("{}", Cause()), "Empty");
  EXPECT_EQ(fmt::format("{}", Cause::sequential(boom, three)),
            "Fail(std::runtime_error: boom) then Interrupt(#3)");
  EXPECT_EQ(fmt::format("{}", Cause::parallel(boom, Cause::sequential(three, boom))),
            "Parallel(Fail(std::runtime_error: boom), Interrupt(#3) then "
            "Fail(std::runtime_error: boom))");
  EXPECT_EQ(fmt::format("{}", Cause::sequential(Cause::parallel(three, three), boom)),
            "Parallel(Interrupt(#3), Interrupt(#3)) then Fail(std::runtime_error: boom)");
  EXPECT_EQ(fmt::format("{}", Cause::fail(error(std::logic_error("c")), "in finalizer")),
            "Fail(std::logic_error: c) [in finalizer]");
  EXPECT_EQ(fmt::format("<{:>16}>", three), "<   Interrupt(#3)>");
}

TEST(Cause, test_cause_ostream_matches_fmt) {
  Cause c = Cause::parallel(fail("a"), Cause::interrupt(FiberId(8)));
  std::ostringstream os;
  os << c;
  EXPECT_EQ(os.str(), fmt::format("{}", c));
  EXPECT_EQ(os.str(), "Parallel(Fail(std::runtime_error: a), Interrupt(#8))");
}

TEST(Cause, test_cause_deep_trees_need_no_deep_stack) {
  // A race over many failing fibers folds into a deep tree; walking, printing
  // and destroying it must work on a fiber-sized stack.
  static constexpr int kDepth = 50'000;
  run_on_small_stack([] {
    Cause chain;   // Sequential(Sequential(..., F), I): one flattened run
    Cause zigzag;  // alternating kinds: nothing to flatten
    for (int i = 0; i < kDepth; ++i) {
      Cause leaf = i % 2 ? Cause::interrupt(FiberId(i)) : fail("x");
      chain = Cause::sequential(std::move(chain), leaf);
      zigzag = i % 2 ? Cause::sequential(leaf, std::move(zigzag))
                     : Cause::parallel(std::move(zigzag), leaf);
    }
    EXPECT_EQ(chain.failures().size(), kDepth / 2u);
    EXPECT_EQ(zigzag.interruptors().size(), kDepth / 2u);
    EXPECT_EQ(zigzag.interruptors().front(), FiberId(kDepth - 1));
    EXPECT_NE(zigzag.failure<std::runtime_error>(), nullptr);
    std::string pretty = chain.pretty();
    EXPECT_EQ(std::count(pretty.begin(), pretty.end(), '\n'), kDepth);
    std::string line = fmt::format("{}", zigzag);
    EXPECT_EQ(line.rfind("Interrupt(#49999) then ", 0), 0u);
    chain = Cause();
    zigzag = Cause();  // destruction must not recurse either
  });
}

TEST(Cause, test_cause_copies_are_read_and_dropped_from_many_threads) {
  // Nodes are immutable: threads may walk, print, copy and drop one tree at
  // once; whichever thread drops the last copy destroys it (run under TSan).
  constexpr int kThreads = 4;
  Cause shared;
  for (int i = 0; i < 1000; ++i) {
    shared = Cause::parallel(std::move(shared), i % 3 ? fail("x") : Cause::interrupt(FiberId(i)));
  }
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  std::vector<std::size_t> failures(kThreads);
  std::vector<std::size_t> newlines(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t, copy = shared] {
      start.arrive_and_wait();
      Cause mine = copy;
      failures[t] = mine.failures().size();
      std::string pretty = mine.pretty();
      newlines[t] = std::count(pretty.begin(), pretty.end(), '\n');
    });
  }
  shared = Cause();  // the threads hold the only copies now
  for (auto& thread : threads) thread.join();
  for (std::size_t count : failures) EXPECT_EQ(count, 666u);   // i % 3 != 0 for 666 of 1000
  for (std::size_t count : newlines) EXPECT_EQ(count, 1000u);  // "Parallel" + 1000 children
}

// ---------------------------------------------------------------- Sites

using Site = Cause::Site;

std::vector<FiberId> site_fibers(const std::vector<Site>& sites) {
  std::vector<FiberId> out;
  for (const Site& site : sites) out.push_back(site.fiber);
  return out;
}

TEST(Cause, test_cause_site_is_recorded_on_leaves_only) {
  Cause failure = Cause::fail(error(std::runtime_error("x")), {}, {FiberId(12), "user-3"});
  Cause interrupt = Cause::interrupt(FiberId(3), {FiberId(5), ""});
  EXPECT_EQ(failure.site(), (Site{FiberId(12), "user-3"}));
  EXPECT_EQ(interrupt.site(), (Site{FiberId(5), ""}));
  EXPECT_EQ(interrupt.interruptor(), FiberId(3));
  EXPECT_EQ(Cause::sequential(failure, interrupt).site(), Site());
  EXPECT_EQ(Cause().site(), Site());
  EXPECT_EQ(fail("by hand").site(), Site());  // built by hand: no fiber recorded
  EXPECT_EQ(Cause::interrupt(FiberId(3)).site(), Site());
  Cause tree = Cause::parallel(Cause::sequential(interrupt, failure), fail("no site"));
  EXPECT_EQ(tree.failure_sites(), (std::vector<Site>{{FiberId(12), "user-3"}, Site()}));
  EXPECT_EQ(tree.interrupt_sites(), (std::vector<Site>{{FiberId(5), ""}}));
  EXPECT_TRUE(Cause().failure_sites().empty());
}

TEST(Cause, test_cause_pretty_and_one_line_name_the_fiber) {
  const Site user{FiberId(12), "user-3"};
  Cause c = Cause::sequential(
      Cause::sequential(Cause::fail(error(std::runtime_error("boom")), {}, user),
                        Cause::fail(error(std::logic_error("cleanup")), "in finalizer", user)),
      Cause::interrupt(FiberId(3), {FiberId(5), ""}));
  EXPECT_EQ(c.pretty(),
            "Sequential\n"
            "├─ Fail in fiber #12 'user-3': std::runtime_error: boom\n"
            "├─ Fail (in finalizer) in fiber #12 'user-3': std::logic_error: cleanup\n"
            "└─ Interrupted by #3 in fiber #5");
  EXPECT_EQ(fmt::format("{}", c),
            "Fail(#12 'user-3': std::runtime_error: boom) then Fail(#12 'user-3': "
            "std::logic_error: cleanup) [in finalizer] then Interrupt(#3 in #5)");
}

TEST(Cause, test_cause_one_line_form_escapes_line_breaks) {
  Cause c = Cause::parallel(
      Cause::fail(error(std::runtime_error("line 1\nline 2\r")), "a\nnote", {FiberId(2), "x\ny"}),
      Cause::interrupt(FiberId(3), {FiberId(4), "p\nq"}));
  std::string line = fmt::format("{}", c);
  EXPECT_EQ(line.find_first_of("\n\r"), std::string::npos) << line;
  EXPECT_EQ(line,
            "Parallel(Fail(#2 'x\\ny': std::runtime_error: line 1\\nline 2\\r) [a\\nnote], "
            "Interrupt(#3 in #4 'p\\nq'))");
  // A CauseError leaf (empty cause: not unwrapped) has a multi-line what().
  Cause nested = Cause::fail(error(weft::CauseError(Cause())));
  EXPECT_EQ(fmt::format("{}", nested).find('\n'), std::string::npos);
}

TEST(Cause, test_cause_fail_unwraps_a_cause_error) {
  Cause carried = Cause::parallel(
      Cause::fail(error(std::runtime_error("a")), {}, {FiberId(3), "three"}),
      Cause::sequential(Cause::interrupt(FiberId(7), {FiberId(4), ""}),
                        Cause::fail(error(std::invalid_argument("b")), {}, {FiberId(4), ""})));
  Cause c = Cause::fail(error(weft::CauseError(carried)), {}, {FiberId(1), "parent"});
  EXPECT_EQ(c.failures(), carried.failures());  // the same exception objects
  EXPECT_EQ(c.failure<weft::CauseError>(), nullptr);
  ASSERT_NE(c.failure<std::invalid_argument>(), nullptr);
  EXPECT_EQ(c.failure<std::invalid_argument>(), carried.failure<std::invalid_argument>());
  EXPECT_EQ(c.interruptors(), std::vector<FiberId>{FiberId(7)});  // seen through too
  // The leaves keep their own fibers (not the fiber the CauseError escaped).
  EXPECT_EQ(site_fibers(c.failure_sites()), (std::vector<FiberId>{FiberId(3), FiberId(4)}));
  EXPECT_EQ(c.interrupt_sites(), (std::vector<Site>{{FiberId(4), ""}}));
  // Nothing to add: the very same tree.
  EXPECT_EQ(&c.left(), &carried.left());
  // Wrapped twice, still the same failures.
  Cause twice = Cause::fail(error(weft::CauseError(Cause::fail(error(weft::CauseError(carried))))));
  EXPECT_EQ(twice.failures(), carried.failures());
}

TEST(Cause, test_cause_fail_gives_unwrapped_leaves_what_they_lack) {
  // Leaves without a site get the fiber the CauseError escaped; failures
  // without a note get the note; what a leaf has, it keeps.
  Cause carried = Cause::parallel(fail("no site"), Cause::fail(error(std::logic_error("own")),
                                                               "own note", {FiberId(3), "three"}));
  Cause c = Cause::fail(error(weft::CauseError(carried)), "in finalizer", {FiberId(9), "nine"});
  EXPECT_EQ(c.failures(), carried.failures());
  EXPECT_EQ(c.failure_sites(), (std::vector<Site>{{FiberId(9), "nine"}, {FiberId(3), "three"}}));
  EXPECT_EQ(c.pretty(),
            "Parallel\n"
            "├─ Fail (in finalizer) in fiber #9 'nine': std::runtime_error: no site\n"
            "└─ Fail (own note) in fiber #3 'three': std::logic_error: own");
  EXPECT_EQ(carried.failure_sites(),
            (std::vector<Site>{Site(), {FiberId(3), "three"}}));  // unchanged
}

TEST(Cause, test_cause_fail_of_an_interrupt_only_cause_error_is_an_interruption) {
  Cause c = Cause::fail(error(weft::CauseError(Cause::interrupt(FiberId(2)))));
  EXPECT_TRUE(c.interrupted_only());
  EXPECT_EQ(c.interruptors(), std::vector<FiberId>{FiberId(2)});
}

TEST(Cause, test_cause_fail_keeps_an_empty_cause_error_as_a_failure) {
  Cause c = Cause::fail(error(weft::CauseError(Cause())), {}, {FiberId(5), ""});
  EXPECT_EQ(c.kind(), CauseKind::fail);
  EXPECT_NE(c.failure<weft::CauseError>(), nullptr);
  EXPECT_EQ(c.site(), (Site{FiberId(5), ""}));
}

TEST(Cause, test_cause_fail_of_a_rethrown_original_is_its_leaf) {
  // rethrow_cause() of one failure throws the original exception; the
  // fiber it escapes must not claim it: Cause::fail gives the old leaf back.
  Cause child =
      Cause::sequential(Cause::interrupt(FiberId(1), {FiberId(12), "user-3"}),
                        Cause::fail(error(std::runtime_error("db")), {}, {FiberId(12), "user-3"}));
  Cause back;
  try {
    weft::detail::rethrow_cause(child);
  } catch (...) {
    back = Cause::fail(std::current_exception(), {}, {FiberId(30), "parent"});
  }
  EXPECT_EQ(back.failures(), child.failures());
  EXPECT_EQ(back.failure_sites(), (std::vector<Site>{{FiberId(12), "user-3"}}));
  // A new exception of the same type is a new failure, at the given site.
  Cause other = Cause::fail(error(std::runtime_error("db")), {}, {FiberId(30), "parent"});
  EXPECT_EQ(other.failure_sites(), (std::vector<Site>{{FiberId(30), "parent"}}));
}

TEST(Cause, test_cause_fail_unwraps_deep_trees_on_a_small_stack) {
  static constexpr int kDepth = 50'000;
  run_on_small_stack([] {
    // Sequential(Sequential(..., F), I), no sites: every leaf gets one. (A
    // chain, not a zigzag: CauseError's message is pretty(), whose indentation
    // grows with the depth of alternating kinds.)
    Cause chain;
    for (int i = 0; i < kDepth; ++i)
      chain = Cause::sequential(std::move(chain), i % 2 ? Cause::interrupt(FiberId(i)) : fail("x"));
    Cause c = Cause::fail(error(weft::CauseError(chain)), {}, {FiberId(8), ""});
    EXPECT_EQ(c.failures(), chain.failures());
    EXPECT_EQ(c.interruptors(), chain.interruptors());
    auto sites = c.failure_sites();
    EXPECT_EQ(std::count(sites.begin(), sites.end(), Site{FiberId(8), ""}), kDepth / 2);
    chain = Cause();
    c = Cause();
  });
}

// ---------------------------------------------------------------- CauseError

TEST(CauseError, test_cause_error_holds_the_cause_and_describes_it) {
  static_assert(std::is_base_of_v<std::exception, weft::CauseError>);
  static_assert(std::is_nothrow_copy_constructible_v<weft::CauseError>);
  Cause c = Cause::parallel(fail("a"), fail("b"));
  weft::CauseError e(c);
  EXPECT_EQ(messages(e.cause()), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(std::string(e.what()), "weft: several failures:\n" + c.pretty());
  weft::CauseError copy = e;
  EXPECT_EQ(copy.what(), e.what());  // computed once, shared by copies
}

TEST(CauseError, test_cause_error_message_fits_fewer_failures) {
  EXPECT_EQ(std::string(weft::CauseError(fail("a")).what()),
            "weft: failure:\nFail: std::runtime_error: a");
  EXPECT_EQ(std::string(weft::CauseError(Cause::interrupt(FiberId(2))).what()),
            "weft: interrupted:\nInterrupted by #2");
  EXPECT_EQ(std::string(weft::CauseError(Cause()).what()), "weft: CauseError with an empty cause");
}

// ---------------------------------------------------------------- Interrupted

TEST(Interrupted, test_interrupted_is_not_a_std_exception) {
  static_assert(!std::is_base_of_v<std::exception, weft::Interrupted>);
  static_assert(std::is_nothrow_constructible_v<weft::Interrupted, Cause>);
  static_assert(std::is_nothrow_copy_constructible_v<weft::Interrupted>);
  bool caught_as_std_exception = false;
  bool caught_as_interrupted = false;
  try {
    try {
      throw weft::Interrupted(Cause::interrupt(FiberId(3)));
    } catch (const std::exception&) {
      caught_as_std_exception = true;
    }
  } catch (const weft::Interrupted& e) {
    caught_as_interrupted = true;
    EXPECT_EQ(e.cause().interruptors(), std::vector<FiberId>{FiberId(3)});
  }
  EXPECT_FALSE(caught_as_std_exception);
  EXPECT_TRUE(caught_as_interrupted);
}

TEST(Interrupted, test_interrupted_what_names_the_interruptors) {
  Cause c = Cause::parallel(Cause::interrupt(FiberId(3)), Cause::interrupt(FiberId(5)));
  weft::Interrupted e(c);
  EXPECT_STREQ(e.what(), "weft::Interrupted: interrupted by #3, #5");
  EXPECT_EQ(e.cause().interruptors(), c.interruptors());
  EXPECT_STREQ(weft::Interrupted(Cause()).what(), "weft::Interrupted");
}

TEST(Interrupted, test_interrupted_as_a_failure_is_described) {
  Cause c = Cause::fail(std::make_exception_ptr(weft::Interrupted(Cause::interrupt(FiberId(4)))));
  EXPECT_EQ(c.pretty(), "Fail: weft::Interrupted: interrupted by #4");
}

}  // namespace
