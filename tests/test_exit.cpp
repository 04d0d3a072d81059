// Tests for Exit<T> and Exit<void> (DESIGN §1 "Exit and Cause", §3.7, §5).
#include "weft/exit.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace {

using weft::Cause;
using weft::Exit;
using weft::FiberId;

struct NoDefault {  // a value type without a default constructor
  explicit NoDefault(int v) : value(v) {}
  int value;
};

template <class E>
Cause fail_with(E e, std::string_view note = {}) {
  return Cause::fail(std::make_exception_ptr(std::move(e)), note);
}

// thrown_by() runs f and returns what it threw, as an exception_ptr.
template <class F>
std::exception_ptr thrown_by(F f) {
  try {
    f();
  } catch (...) {
    return std::current_exception();
  }
  return nullptr;
}

TEST(Exit, test_exit_success_holds_the_value) {
  Exit<int> e = Exit<int>::success(42);
  EXPECT_TRUE(e.ok());
  EXPECT_FALSE(e.failed());
  EXPECT_FALSE(e.interrupted());
  EXPECT_TRUE(e.cause().empty());
  EXPECT_EQ(e.value(), 42);
  ASSERT_NE(e.value_if(), nullptr);
  EXPECT_EQ(*e.value_if(), 42);
  e.value() = 7;  // value() & is a mutable reference
  EXPECT_EQ(*e.value_if(), 7);
  const Exit<int>& ce = e;
  EXPECT_EQ(ce.value(), 7);
  EXPECT_EQ(*ce.value_if(), 7);
}

TEST(Exit, test_exit_one_failure_rethrows_the_original_exception) {
  std::exception_ptr original = std::make_exception_ptr(std::out_of_range("index 9"));
  Exit<int> e = Exit<int>::failure(Cause::fail(original));
  EXPECT_FALSE(e.ok());
  EXPECT_TRUE(e.failed());
  EXPECT_FALSE(e.interrupted());
  EXPECT_EQ(e.value_if(), nullptr);
  EXPECT_EQ(e.cause().failures(), std::vector<std::exception_ptr>{original});
  try {
    (void)e.value();
    FAIL() << "value() returned on a failure";
  } catch (const std::out_of_range& caught) {
    EXPECT_STREQ(caught.what(), "index 9");
    // The very object that escaped the fiber, not a copy or a wrapper.
    EXPECT_EQ(&caught, e.cause().failure<std::out_of_range>());
  }
  const Exit<int>& ce = e;
  EXPECT_THROW((void)ce.value(), std::out_of_range);
  EXPECT_THROW((void)std::move(e).value(), std::out_of_range);
}

TEST(Exit, test_exit_one_failure_with_an_interrupt_rethrows_the_failure) {
  Cause c = Cause::sequential(Cause::interrupt(FiberId(2)),
                              fail_with(std::logic_error("cleanup"), "in finalizer"));
  Exit<int> e = Exit<int>::failure(c);
  EXPECT_TRUE(e.failed());
  EXPECT_FALSE(e.interrupted());
  EXPECT_THROW((void)e.value(), std::logic_error);
}

TEST(Exit, test_exit_several_failures_throw_cause_error) {
  Cause c = Cause::sequential(fail_with(std::runtime_error("body")),
                              fail_with(std::logic_error("finalizer"), "in finalizer"));
  Exit<std::string> e = Exit<std::string>::failure(c);
  EXPECT_TRUE(e.failed());
  std::exception_ptr thrown = thrown_by([&] { (void)e.value(); });
  ASSERT_NE(thrown, nullptr);
  try {
    std::rethrow_exception(thrown);
  } catch (const weft::CauseError& error) {
    ASSERT_EQ(error.cause().failures().size(), 2u);
    EXPECT_EQ(error.cause().failures(), c.failures());
    ASSERT_NE(error.cause().failure<std::runtime_error>(), nullptr);
    EXPECT_STREQ(error.cause().failure<std::runtime_error>()->what(), "body");
    ASSERT_NE(error.cause().failure<std::logic_error>(), nullptr);
    EXPECT_STREQ(error.cause().failure<std::logic_error>()->what(), "finalizer");
    std::string what = error.what();
    EXPECT_EQ(what.rfind("weft: several failures:\n", 0), 0u) << what;
    EXPECT_NE(what.find("in finalizer"), std::string::npos) << what;
  } catch (...) {
    FAIL() << "expected weft::CauseError";
  }
}

TEST(Exit, test_exit_interruption_throws_interrupted_past_std_exception_handlers) {
  Cause c = Cause::parallel(Cause::interrupt(FiberId(3)), Cause::interrupt(FiberId(5)));
  Exit<int> e = Exit<int>::failure(c);
  EXPECT_FALSE(e.ok());
  EXPECT_FALSE(e.failed());
  EXPECT_TRUE(e.interrupted());
  bool caught_as_std_exception = false;
  bool caught_as_interrupted = false;
  try {
    try {
      (void)e.value();
    } catch (const std::exception&) {
      caught_as_std_exception = true;
    }
  } catch (const weft::Interrupted& interrupted) {
    caught_as_interrupted = true;
    EXPECT_EQ(interrupted.cause().interruptors(), (std::vector<FiberId>{FiberId(3), FiberId(5)}));
    EXPECT_STREQ(interrupted.what(), "weft::Interrupted: interrupted by #3, #5");
  }
  EXPECT_FALSE(caught_as_std_exception);
  EXPECT_TRUE(caught_as_interrupted);
}

TEST(Exit, test_exit_works_for_move_only_values) {
  static_assert(!std::is_copy_constructible_v<Exit<std::unique_ptr<int>>>);
  static_assert(std::is_nothrow_move_constructible_v<Exit<std::unique_ptr<int>>>);
  Exit<std::unique_ptr<int>> e = Exit<std::unique_ptr<int>>::success(std::make_unique<int>(5));
  Exit<std::unique_ptr<int>> moved = std::move(e);
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(*moved.value(), 5);
  std::unique_ptr<int> out = std::move(moved).value();
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(*out, 5);
  EXPECT_EQ(*moved.value_if(), nullptr);  // moved out of the Exit
  auto failed = Exit<std::unique_ptr<int>>::failure(fail_with(std::runtime_error("x")));
  EXPECT_THROW((void)std::move(failed).value(), std::runtime_error);
}

TEST(Exit, test_exit_works_without_a_default_constructor) {
  static_assert(!std::is_default_constructible_v<NoDefault>);
  Exit<NoDefault> e = Exit<NoDefault>::success(NoDefault(8));
  EXPECT_EQ(e.value().value, 8);
  Exit<NoDefault> f = Exit<NoDefault>::failure(Cause::interrupt(FiberId(1)));
  EXPECT_TRUE(f.interrupted());
  EXPECT_THROW((void)f.value(), weft::Interrupted);
}

TEST(Exit, test_exit_of_cause_keeps_success_and_failure_apart) {
  // T may itself be Cause: the state is told apart by position, not by type.
  Exit<Cause> ok = Exit<Cause>::success(Cause::interrupt(FiberId(4)));
  EXPECT_TRUE(ok.ok());
  EXPECT_TRUE(ok.cause().empty());
  EXPECT_EQ(ok.value().interruptor(), FiberId(4));
  Exit<Cause> failed = Exit<Cause>::failure(Cause::interrupt(FiberId(6)));
  EXPECT_TRUE(failed.interrupted());
  EXPECT_EQ(failed.value_if(), nullptr);
}

TEST(Exit, test_exit_void_success_and_failure) {
  Exit<void> ok = Exit<void>::success();
  EXPECT_TRUE(ok.ok());
  EXPECT_FALSE(ok.failed());
  EXPECT_FALSE(ok.interrupted());
  EXPECT_TRUE(ok.cause().empty());
  EXPECT_NO_THROW(ok.value());
  Exit<void> failed = Exit<void>::failure(fail_with(std::runtime_error("void failed")));
  EXPECT_TRUE(failed.failed());
  EXPECT_THROW(failed.value(), std::runtime_error);
  Exit<void> both = Exit<void>::failure(
      Cause::parallel(fail_with(std::runtime_error("a")), fail_with(std::runtime_error("b"))));
  EXPECT_THROW(both.value(), weft::CauseError);
  Exit<void> interrupted = Exit<void>::failure(Cause::interrupt(FiberId(9)));
  EXPECT_TRUE(interrupted.interrupted());
  EXPECT_THROW(interrupted.value(), weft::Interrupted);
}

TEST(Exit, test_exit_copies_share_the_cause) {
  Exit<int> e = Exit<int>::failure(Cause::sequential(fail_with(1), fail_with(2)));
  Exit<int> copy = e;
  EXPECT_EQ(&copy.cause().left(), &e.cause().left());
}

TEST(Exit, test_exit_failure_rejects_an_empty_cause) {
#ifdef WEFT_DEBUG_ASSERTS
  EXPECT_DEATH((void)Exit<int>::failure(Cause()), "non-empty cause");
  EXPECT_DEATH((void)Exit<void>::failure(Cause()), "non-empty cause");
#else
  EXPECT_THROW((void)Exit<int>::failure(Cause()), std::invalid_argument);
  EXPECT_THROW((void)Exit<void>::failure(Cause()), std::invalid_argument);
#endif
}

TEST(Exit, test_exit_formats_with_fmt_and_ostream) {
  EXPECT_EQ(fmt::format("{}", Exit<int>::success(42)), "Exit(ok: 42)");
  EXPECT_EQ(fmt::format("{}", Exit<std::string>::success("hi")), "Exit(ok: hi)");
  EXPECT_EQ(fmt::format("{}", Exit<NoDefault>::success(NoDefault(1))), "Exit(ok)");
  EXPECT_EQ(fmt::format("{}", Exit<std::unique_ptr<int>>::success(nullptr)), "Exit(ok)");
  EXPECT_EQ(fmt::format("{}", Exit<void>::success()), "Exit(ok)");
  EXPECT_EQ(fmt::format("{}", Exit<int>::failure(fail_with(std::runtime_error("boom")))),
            "Exit(failed: Fail(std::runtime_error: boom))");
  EXPECT_EQ(fmt::format("{}", Exit<void>::failure(Cause::interrupt(FiberId(3)))),
            "Exit(interrupted: Interrupt(#3))");
  EXPECT_EQ(fmt::format("{}", Exit<int>::failure(Cause::sequential(
                                  Cause::interrupt(FiberId(3)), fail_with(std::logic_error("c"))))),
            "Exit(failed: Interrupt(#3) then Fail(std::logic_error: c))");
  EXPECT_EQ(fmt::format("[{:<14}]", Exit<int>::success(1)), "[Exit(ok: 1)   ]");
  std::ostringstream os;
  os << Exit<int>::success(5) << ' ' << Exit<void>::failure(Cause::interrupt(FiberId(2)));
  EXPECT_EQ(os.str(), "Exit(ok: 5) Exit(interrupted: Interrupt(#2))");
}

TEST(Exit, test_exit_formats_optional_values) {
  // fmt 9 cannot format std::optional: Exit prints it itself.
  EXPECT_EQ(fmt::format("{}", Exit<std::optional<int>>::success(std::nullopt)),
            "Exit(ok: nullopt)");
  EXPECT_EQ(fmt::format("{}", Exit<std::optional<int>>::success(5)), "Exit(ok: 5)");
  EXPECT_EQ(fmt::format("{}", Exit<std::optional<std::string>>::success("hi")), "Exit(ok: hi)");
  EXPECT_EQ(fmt::format("{}", Exit<std::optional<NoDefault>>::success(std::nullopt)),
            "Exit(ok: nullopt)");
  EXPECT_EQ(fmt::format("{}", Exit<std::optional<NoDefault>>::success(NoDefault(1))), "Exit(ok)");
  std::ostringstream os;
  os << Exit<std::optional<int>>::success(std::nullopt);
  EXPECT_EQ(os.str(), "Exit(ok: nullopt)");
}

TEST(Exit, test_exit_value_round_trip_keeps_the_failures) {
  // value() -> exception -> Cause::fail (what a fiber does with an escaping
  // exception) gives back the same failures, one or several, not a wrapper.
  Cause sites = Cause::parallel(
      Cause::fail(std::make_exception_ptr(std::runtime_error("a")), {}, {FiberId(4), "four"}),
      Cause::fail(std::make_exception_ptr(std::logic_error("b")), {}, {FiberId(5), ""}));
  Cause one = Cause::fail(std::make_exception_ptr(std::out_of_range("c")), {}, {FiberId(6), "six"});
  for (const Cause& original : {sites, one}) {
    Exit<int> e = Exit<int>::failure(original);
    Cause back = Cause::fail(thrown_by([&] { (void)e.value(); }));
    EXPECT_EQ(back.failures(), original.failures());
    EXPECT_EQ(back.failure_sites(), original.failure_sites());
    EXPECT_EQ(back.failure<weft::CauseError>(), nullptr);
  }
}

}  // namespace
