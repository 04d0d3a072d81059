// test_gdb: tools/gdb/weft.py, run by gdb in batch mode against
// tests/gdb/parked_fiber.cpp (a runtime with two parked fibers, stopped at a
// breakpoint while its root fiber runs): `info weft-fibers` lists each fiber
// with its name, parent and state, and `weft-bt` prints a parked fiber's
// backtrace down to the function it parked in -- in the live process and
// from a core file written with gcore. Skipped only when gdb is missing or
// cannot run a program here (no ptrace).
#include <gtest/gtest.h>

#include "support/scale.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Output {
  int status = -1;  // exit status, or -1 when the command did not exit normally
  std::string text;
};

// run() runs `command` with sh, stderr merged into stdout; `timeout` bounds
// its time and `ulimit -f` (512-byte blocks) the files it writes to 1 GiB
// (the core file: ~160 MB here).
Output run(const std::string& command) {
  Output out;
  FILE* p = ::popen(("ulimit -f 2097152; timeout 300 " + command + " 2>&1").c_str(), "r");
  if (p == nullptr) return out;
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.text.append(buf.data(), n);
  const int status = ::pclose(p);
  if (status != -1 && WIFEXITED(status)) out.status = WEXITSTATUS(status);
  return out;
}

// gdb() is gdb in batch mode with no init files and the extension loaded.
// Appended, not `std::string(...) + ...`: g++ 12 at -O1 under TSan, with the
// tests' precompiled header, warns (-Warray-bounds, an error under -Werror)
// about its own inlined operator+ on a moved-from temporary (a known false
// positive of that release).
std::string gdb(const std::string& args) {
  std::string command =
      "gdb -batch -nx -iex 'set debuginfod enabled off' -ex 'set pagination off' "
      "-ex 'set confirm off' -x '";
  command += WEFT_GDB_SCRIPT;
  command += "' ";
  command += args;
  return command;
}

struct Ids {
  unsigned long long main = 0, sleeper = 0, waiter = 0, shielded = 0, locker = 0;
};

// ids() reads the line parked_fiber.cpp prints before stopping.
Ids ids(const std::string& text) {
  Ids ids;
  const std::size_t at = text.find("weft-gdb-ids ");
  if (at != std::string::npos)
    std::sscanf(text.c_str() + at,
                "weft-gdb-ids main=%llu sleeper=%llu waiter=%llu shielded=%llu locker=%llu",
                &ids.main, &ids.sleeper, &ids.waiter, &ids.shielded, &ids.locker);
  return ids;
}

// (No std::regex here: GCC 12 warns inside <regex> at -O1 under the
// sanitizers, and the build treats warnings as errors.)

// lines() splits text into lines.
std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// Row is one fiber's line of `info weft-fibers`.
struct Row {
  std::size_t indent = 0;            // spaces before "#id"
  std::vector<std::string> columns;  // id, parent, state, worker, name, flags, waiting in...
};

// row() finds fiber `id`'s line in `text` (no columns when absent).
Row row(const std::string& text, unsigned long long id) {
  const std::string key = "#" + std::to_string(id);
  for (const std::string& line : lines(text)) {
    Row r;
    r.indent = line.find_first_not_of(' ');
    std::istringstream in(line);
    for (std::string column; in >> column;) r.columns.push_back(column);
    if (!r.columns.empty() && r.columns[0] == key) return r;
  }
  return {};
}

// has_line() is true when one line of text contains all of `parts`.
bool has_line(const std::string& text, std::initializer_list<std::string> parts) {
  for (const std::string& line : lines(text)) {
    bool all = true;
    for (const std::string& part : parts) all = all && line.find(part) != std::string::npos;
    if (all) return true;
  }
  return false;
}

// waiting() is the "waiting in" column of fiber `id` ("" when absent).
std::string waiting(const std::string& text, unsigned long long id) {
  const Row r = row(text, id);
  std::string out;
  for (std::size_t i = 6; i < r.columns.size(); ++i) out += (i > 6 ? " " : "") + r.columns[i];
  return out;
}

// check_row() checks a fiber's id, parent, state, worker, name and flags.
void check_row(const std::string& text, unsigned long long id, const std::string& parent,
               const std::string& state, const std::string& name, const std::string& flags) {
  const Row r = row(text, id);
  ASSERT_GE(r.columns.size(), 7u) << "no line for fiber #" << id << " in:\n" << text;
  EXPECT_EQ(r.columns[1], parent) << text;
  EXPECT_EQ(r.columns[2], state) << text;
  EXPECT_TRUE(r.columns[3] == "0" || r.columns[3] == "1") << text;  // two workers
  EXPECT_EQ(r.columns[4], name) << text;
  EXPECT_EQ(r.columns[5], flags) << text;
}

// check_listing() checks the fibers of parked_fiber.cpp in `text`.
void check_listing(const std::string& text, const Ids& id) {
  const std::string main = "#" + std::to_string(id.main);
  const std::string waiter = "#" + std::to_string(id.waiter);
  check_row(text, id.main, "-", "running", "gdb-main", "-");
  check_row(text, id.sleeper, main, "parked", "sleeper", "-");
  check_row(text, id.waiter, main, "parked", "waiter", "-");
  // A grandchild, indented under its parent, interrupted behind its mask.
  check_row(text, id.shielded, waiter, "parked", "shielded",
            "interrupt-pending(" + waiter + "),masked");
  EXPECT_EQ(row(text, id.main).indent + 4, row(text, id.shielded).indent) << text;
  // What each waits in, on which object, from which line of parked_fiber.cpp.
  EXPECT_EQ(waiting(text, id.sleeper).rfind("sleep at parked_fiber.cpp:", 0), 0u) << text;
  EXPECT_EQ(waiting(text, id.waiter).rfind("Deferred::await on 0x", 0), 0u) << text;
  EXPECT_NE(waiting(text, id.waiter).find(" at parked_fiber.cpp:"), std::string::npos) << text;
  EXPECT_EQ(waiting(text, id.main).rfind("last yield point at parked_fiber.cpp:", 0), 0u) << text;
  // The Mutex "locker" waits for is held by the root, and both lines say so.
  check_row(text, id.locker, main, "parked", "locker", "-");
  const std::string locker = waiting(text, id.locker);
  EXPECT_EQ(locker.rfind("Mutex::lock on 0x", 0), 0u) << text;
  EXPECT_EQ(locker.size() - locker.rfind(" held by " + main), (" held by " + main).size()) << text;
  const std::string prefix = "Mutex::lock on ";
  const std::string mutex =
      locker.substr(prefix.size(), locker.find(' ', prefix.size()) - prefix.size());
  EXPECT_NE(waiting(text, id.main).find("; holds Mutex " + mutex), std::string::npos) << text;
  EXPECT_NE(text.find("\n5 fibers\n"), std::string::npos) << text;
}

// check_backtrace() checks weft-bt's output for the sleeper in `text`.
void check_backtrace(const std::string& text, const Ids& id) {
  EXPECT_NE(text.find("fiber #" + std::to_string(id.sleeper) + " \"sleeper\" (parked)"),
            std::string::npos)
      << text;
  // Frame 0 is where the fiber switched out, not the stopped thread's frame.
  EXPECT_TRUE(has_line(text, {"#0 ", "context_switch"})) << text;
  EXPECT_NE(text.find("weft::this_fiber::sleep_for"), std::string::npos) << text;
  EXPECT_TRUE(has_line(text, {"weft_gdb_sleeper_body", "parked_fiber.cpp:"})) << text;
  EXPECT_EQ(text.find("weft_gdb_stop_here"), std::string::npos) << text;
  EXPECT_EQ(text.find("corrupt stack"), std::string::npos) << text;
  // jump_fcontext saves registers where weft.py expects them.
  EXPECT_EQ(text.find("warning: jump_fcontext"), std::string::npos) << text;
}

class GdbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const Output version = run("gdb --version");
    if (version.status != 0 || version.text.find("GNU gdb") == std::string::npos)
      GTEST_SKIP() << "gdb is not installed (scripts/deps.sh installs it): " << version.text;
    const Output probe = run("gdb -batch -nx -ex run --args /bin/true");
    if (probe.text.find("exited normally") == std::string::npos)
      GTEST_SKIP() << "gdb cannot run a program here (ptrace not permitted?): " << probe.text;
    dir_ = std::filesystem::temp_directory_path() /
           ("weft_test_gdb." + std::to_string(::getpid()) + "." +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // stop() runs the program to its breakpoint and runs `commands` there.
  std::string stop(const std::string& commands) {
    return run(gdb("-ex 'break weft_gdb_stop_here' -ex run " + commands + " '" + WEFT_GDB_PROGRAM +
                   "'"))
        .text;
  }

  std::filesystem::path dir_;
};

TEST_F(GdbTest, test_gdb_live_process_lists_fibers_and_backtraces_a_parked_one) {
  const std::string text = stop(
      "-ex 'echo ==list==\\n' -ex 'info weft-fibers' "
      "-ex 'echo ==bt==\\n' -ex 'eval \"weft-bt %d\", weft_gdb_sleeper_id' "
      "-ex 'echo ==byname==\\n' -ex 'weft-bt waiter' "
      "-ex 'echo ==running==\\n' -ex 'weft-bt gdb-main' -ex 'echo ==all==\\n' -ex 'weft-bt all' "
      "-ex 'echo ==thread==\\n' -ex 'bt 1' -ex 'echo ==end==\\n'");
  const Ids id = ids(text);
  ASSERT_NE(id.sleeper, 0u) << "the program did not reach its breakpoint:\n" << text;
  const auto section = [&](const std::string& from, const std::string& to) {
    const std::size_t a = text.find("==" + from + "==");
    const std::size_t b = text.find("==" + to + "==");
    EXPECT_TRUE(a != std::string::npos && b != std::string::npos && a < b) << text;
    return a < b && b != std::string::npos ? text.substr(a, b - a) : std::string();
  };
  check_listing(section("list", "bt"), id);
  check_backtrace(section("bt", "byname"), id);
  const std::string waiter = section("byname", "running");
  EXPECT_NE(waiter.find("weft_gdb_waiter_body"), std::string::npos) << waiter;
  EXPECT_NE(waiter.find("Deferred"), std::string::npos) << waiter;
  const std::string running = section("running", "all");
  EXPECT_NE(running.find("is running on worker"), std::string::npos) << running;
  const std::string all = section("all", "thread");
  EXPECT_NE(all.find("weft_gdb_sleeper_body"), std::string::npos) << all;
  EXPECT_NE(all.find("weft_gdb_waiter_body"), std::string::npos) << all;
  EXPECT_NE(all.find("is running on worker"), std::string::npos) << all;
  // The fiber's frames are shown only inside weft-bt: `bt` is the thread's again.
  const std::string thread = section("thread", "end");
  EXPECT_NE(thread.find("#0  weft_gdb_stop_here"), std::string::npos) << thread;
}

TEST_F(GdbTest, test_gdb_core_file_lists_fibers_and_backtraces_a_parked_one) {
  if (weft::test::kSanitized)
    GTEST_SKIP() << "gcore of a sanitized process dumps the sanitizer's shadow memory "
                    "(tens of GB); the live test covers this build";
  const std::string core = (dir_ / "parked_fiber.core").string();
  const std::string live = stop("-ex 'gcore " + core + "'");
  const Ids id = ids(live);
  ASSERT_NE(id.sleeper, 0u) << "the program did not reach its breakpoint:\n" << live;
  ASSERT_TRUE(std::filesystem::exists(core)) << "gcore wrote no core file:\n" << live;

  const Output out =
      run(gdb("-ex 'echo ==list==\\n' -ex 'info weft-fibers' -ex 'echo ==bt==\\n' "
              "-ex 'eval \"weft-bt %d\", weft_gdb_sleeper_id' '" +
              std::string(WEFT_GDB_PROGRAM) + "' '" + core + "'"));
  const std::size_t bt = out.text.find("==bt==");
  ASSERT_NE(bt, std::string::npos) << out.text;
  check_listing(out.text.substr(0, bt), id);
  check_backtrace(out.text.substr(bt), id);
}

}  // namespace
