// RuntimeOptions::trace_path: a small program (a named sleeper interrupted,
// a race, a timeout, a Channel hand-off) writes a trace; after ~Runtime the
// file is parsed as JSON and the events the format promises are checked.
#include "support/weft_test.hpp"

#include <weft/channel.hpp>
#include <weft/race.hpp>
#include <weft/timeout.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace weft {
namespace {

using namespace std::chrono_literals;

// Json is a parsed JSON value: enough of RFC 8259 to check a trace file
// (\u escapes other than ASCII are kept as '?').
struct Json {
  enum class Kind { null, boolean, number, string, array, object } kind = Kind::null;
  double number = 0;
  std::string text;
  std::vector<Json> items;
  std::map<std::string, Json> fields;

  const Json* get(const std::string& key) const {
    auto it = fields.find(key);
    return it == fields.end() ? nullptr : &it->second;
  }
  std::string str(const std::string& key) const {
    const Json* j = get(key);
    return j != nullptr && j->kind == Kind::string ? j->text : std::string();
  }
  double num(const std::string& key) const {
    const Json* j = get(key);
    return j != nullptr && j->kind == Kind::number ? j->number : -1;
  }
  const Json& args() const {
    static const Json empty;
    const Json* a = get("args");
    return a != nullptr ? *a : empty;
  }
};

// JsonParser parses one value; ok() is false after a syntax error.
class JsonParser {
 public:
  explicit JsonParser(const std::string& s) : s_(s) {}
  Json parse_document() {
    Json v = value();
    space();
    if (i_ != s_.size()) ok_ = false;
    return v;
  }
  bool ok() const { return ok_; }

 private:
  void space() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool eat(char c) {
    space();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  Json value() {
    space();
    Json v;
    if (!ok_ || i_ >= s_.size()) {
      ok_ = false;
      return v;
    }
    const char c = s_[i_];
    if (c == '{') {
      v.kind = Json::Kind::object;
      ++i_;
      if (eat('}')) return v;
      do {
        space();
        std::string key = string_literal();
        if (!eat(':')) ok_ = false;
        v.fields[key] = value();
      } while (ok_ && eat(','));
      if (!eat('}')) ok_ = false;
    } else if (c == '[') {
      v.kind = Json::Kind::array;
      ++i_;
      if (eat(']')) return v;
      do v.items.push_back(value());
      while (ok_ && eat(','));
      if (!eat(']')) ok_ = false;
    } else if (c == '"') {
      v.kind = Json::Kind::string;
      v.text = string_literal();
    } else if (s_.compare(i_, 4, "true") == 0 || s_.compare(i_, 4, "null") == 0) {
      v.kind = s_[i_] == 't' ? Json::Kind::boolean : Json::Kind::null;
      i_ += 4;
    } else if (s_.compare(i_, 5, "false") == 0) {
      v.kind = Json::Kind::boolean;
      i_ += 5;
    } else {
      v.kind = Json::Kind::number;
      std::size_t used = 0;
      try {
        v.number = std::stod(s_.substr(i_, 32), &used);
      } catch (...) {
        ok_ = false;
      }
      if (used == 0) ok_ = false;
      i_ += used;
    }
    return v;
  }
  std::string string_literal() {
    std::string out;
    if (i_ >= s_.size() || s_[i_] != '"') {
      ok_ = false;
      return out;
    }
    for (++i_; i_ < s_.size() && s_[i_] != '"'; ++i_) {
      if (static_cast<unsigned char>(s_[i_]) < 0x20) ok_ = false;
      if (s_[i_] != '\\') {
        out += s_[i_];
        continue;
      }
      if (++i_ >= s_.size()) break;
      switch (s_[i_]) {
        case 'u': {
          const unsigned code = std::stoul(s_.substr(i_ + 1, 4), nullptr, 16);
          out += code < 0x80 ? static_cast<char>(code) : '?';
          i_ += 4;
          break;
        }
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        default:
          out += s_[i_];  // \" \\ \/
      }
    }
    if (i_ >= s_.size()) ok_ = false;
    ++i_;
    return out;
  }

  const std::string& s_;
  std::size_t i_ = 0;
  bool ok_ = true;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class TraceTest : public ::testing::TestWithParam<unsigned> {};
INSTANTIATE_TEST_SUITE_P(Workers, TraceTest, test::kWorkerCounts, test::WorkerName);

// Ids of the program's fibers, recorded while it runs.
struct Ids {
  std::uint64_t main = 0, sleeper = 0, consumer = 0;
};

// run_program() runs the scripted program on a traced runtime and returns
// the trace file's text (read after ~Runtime).
std::string run_program(unsigned workers, Ids& ids) {
  const std::string path = ::testing::TempDir() + "weft_trace_" + std::to_string(::getpid()) + "_" +
                           std::to_string(workers) + ".json";
  {
    RuntimeOptions o;
    o.workers = workers;
    o.name = "trace-test";
    o.trace_path = path;
    Runtime rt(o);
    ForkOptions main_options;
    main_options.name = "main";
    Exit<void> e = rt.block_on(
        [&] {
          ids.main = this_fiber::id().value();
          // A named sleeper, interrupted while parked.
          ForkOptions so;
          so.name = "sleeper";
          Fiber<void> sleeper = fork([] { this_fiber::sleep_for(test::kForever); }, so);
          ids.sleeper = sleeper.id().value();
          test::wait_parked(sleeper);
          EXPECT_TRUE(sleeper.interrupt().interrupted());
          // A race: the loser is interrupted.
          EXPECT_EQ(race(
                        [] {
                          this_fiber::sleep_for(test::kForever);
                          return 1;
                        },
                        [] {
                          this_fiber::yield();
                          return 2;
                        }),
                    2);
          // A timeout.
          EXPECT_FALSE(timeout(1ms, [] { this_fiber::sleep_for(test::kForever); }).has_value());
          // A Channel hand-off to a parked receiver.
          Channel<int> ch(0);
          ForkOptions co;
          co.name = "consumer \"quoted\"";  // the writer escapes names
          Fiber<int> consumer = fork([&] { return ch.receive().value_or(-1); }, co);
          ids.consumer = consumer.id().value();
          test::wait_parked(consumer);
          ch.send(42);
          EXPECT_EQ(consumer.join(), 42);
        },
        main_options);
    EXPECT_TRUE(e.ok()) << e;
  }
  std::string text = read_file(path);
  std::remove(path.c_str());
  return text;
}

// events_named() are the events with this name (and ph, when not empty).
std::vector<const Json*> events_named(const Json& events, const std::string& name,
                                      const std::string& ph = "") {
  std::vector<const Json*> out;
  for (const Json& e : events.items)
    if (e.str("name") == name && (ph.empty() || e.str("ph") == ph)) out.push_back(&e);
  return out;
}

const Json* event_for(const Json& events, const std::string& name, std::uint64_t fiber) {
  for (const Json* e : events_named(events, name))
    if (e->args().num("fiber") == static_cast<double>(fiber)) return e;
  return nullptr;
}

// flow_pairs() counts the flow ids of `cat` that have both an "s" and an
// "f"; `orphans` counts the "f" events without an "s".
int flow_pairs(const Json& events, const std::string& cat, int& orphans) {
  std::set<double> starts, finishes;
  for (const Json& e : events.items) {
    if (e.str("cat") != cat) continue;
    if (e.str("ph") == "s") starts.insert(e.num("id"));
    if (e.str("ph") == "f") {
      finishes.insert(e.num("id"));
      EXPECT_EQ(e.str("bp"), "e");
    }
  }
  int pairs = 0;
  orphans = 0;
  for (double id : finishes) (starts.count(id) != 0 ? pairs : orphans) += 1;
  return pairs;
}

TEST_P(TraceTest, test_trace_file_has_the_promised_events) {
  Ids ids;
  const std::string text = run_program(GetParam(), ids);
  ASSERT_FALSE(text.empty());
  JsonParser parser(text);
  const Json doc = parser.parse_document();
  ASSERT_TRUE(parser.ok()) << "not valid JSON:\n" << text.substr(0, 2000);
  ASSERT_EQ(doc.kind, Json::Kind::object);
  EXPECT_EQ(doc.str("displayTimeUnit"), "ns");
  const Json* events = doc.get("traceEvents");
  ASSERT_NE(events, nullptr);
  ASSERT_EQ(events->kind, Json::Kind::array);

  // Metadata: the process and one track per worker, plus "outside".
  auto process = events_named(*events, "process_name", "M");
  ASSERT_EQ(process.size(), 1u);
  EXPECT_EQ(process[0]->args().str("name"), "weft trace-test");
  std::set<std::string> threads;
  for (const Json* e : events_named(*events, "thread_name", "M"))
    threads.insert(std::to_string(static_cast<int>(e->num("tid"))) + " " + e->args().str("name"));
  EXPECT_TRUE(threads.count("0 outside"));
  for (unsigned i = 0; i < GetParam(); ++i)
    EXPECT_TRUE(threads.count(std::to_string(i + 1) + " worker " + std::to_string(i))) << i;

  // Every event has pid 1 and a timestamp; tids name a worker or "outside".
  for (const Json& e : events->items) {
    EXPECT_EQ(e.num("pid"), 1);
    if (e.str("ph") == "M") continue;
    EXPECT_GE(e.num("ts"), 0) << e.str("name");
    EXPECT_LE(e.num("tid"), GetParam()) << e.str("name");
  }

  // fork, with the name, for each named fiber; main is a root.
  const Json* fork_main = event_for(*events, "fork", ids.main);
  ASSERT_NE(fork_main, nullptr);
  EXPECT_EQ(fork_main->args().str("name"), "main");
  EXPECT_EQ(fork_main->args().num("parent"), 0);
  const Json* fork_sleeper = event_for(*events, "fork", ids.sleeper);
  ASSERT_NE(fork_sleeper, nullptr);
  EXPECT_EQ(fork_sleeper->args().str("name"), "sleeper");
  EXPECT_EQ(fork_sleeper->args().num("parent"), static_cast<double>(ids.main));
  const Json* fork_consumer = event_for(*events, "fork", ids.consumer);
  ASSERT_NE(fork_consumer, nullptr);
  EXPECT_EQ(fork_consumer->args().str("name"), "consumer \"quoted\"");

  // Run slices: on worker tracks, named after the fiber, one at least per
  // fiber that ran, and the main fiber's slices carry its name.
  std::set<int> run_tids;
  for (const Json* e : events_named(*events, "fiber " + std::to_string(ids.main) + " main", "X")) {
    EXPECT_EQ(e->str("cat"), "run");
    EXPECT_GE(e->num("dur"), 0);
    EXPECT_EQ(e->args().num("fiber"), static_cast<double>(ids.main));
  }
  for (const Json& e : events->items)
    if (e.str("ph") == "X") run_tids.insert(static_cast<int>(e.num("tid")));
  EXPECT_FALSE(run_tids.empty());
  EXPECT_EQ(run_tids.count(0), 0u) << "a run slice on the outside track";
  EXPECT_FALSE(
      events_named(*events, "fiber " + std::to_string(ids.sleeper) + " sleeper", "X").empty());

  // park with what and site; the sleeper parked in a sleep, the consumer in receive.
  const Json* park_sleeper = event_for(*events, "park", ids.sleeper);
  ASSERT_NE(park_sleeper, nullptr);
  EXPECT_EQ(park_sleeper->args().str("what"), "sleep");
  const Json* park_consumer = event_for(*events, "park", ids.consumer);
  ASSERT_NE(park_consumer, nullptr);
  EXPECT_EQ(park_consumer->args().str("what"), "Channel::receive");
  // The call sites are this file's lines (the last path component).
  EXPECT_EQ(park_consumer->args().str("site").rfind("test_trace.cpp:", 0), 0u)
      << park_consumer->args().str("site");
  EXPECT_EQ(park_sleeper->args().str("site").rfind("test_trace.cpp:", 0), 0u)
      << park_sleeper->args().str("site");

  // The interrupt of the sleeper: requested by main, delivered, flows paired.
  const Json* requested = event_for(*events, "interrupt requested", ids.sleeper);
  ASSERT_NE(requested, nullptr);
  EXPECT_EQ(requested->args().num("by"), static_cast<double>(ids.main));
  const Json* delivered = event_for(*events, "interrupt delivered", ids.sleeper);
  ASSERT_NE(delivered, nullptr);
  EXPECT_GE(delivered->num("ts"), requested->num("ts"));
  int orphans = 0;
  // The sleeper, the race's loser and the timed-out task were each
  // interrupted; the task and the loser (contestant 0) ran on main's own
  // stack (a TimeoutScope, a RaceScope), so the deadline and the sibling's
  // win are interrupts of main.
  EXPECT_GE(flow_pairs(*events, "interrupt", orphans), 3);
  EXPECT_NE(event_for(*events, "interrupt delivered", ids.main), nullptr);
  EXPECT_EQ(orphans, 0);

  // The hand-off woke the consumer: a wake by main, and wake flows paired.
  bool woken_by_main = false;
  for (const Json* e : events_named(*events, "wake"))
    woken_by_main |= e->args().num("fiber") == static_cast<double>(ids.consumer) &&
                     e->args().num("by") == static_cast<double>(ids.main);
  EXPECT_TRUE(woken_by_main);
  EXPECT_GE(flow_pairs(*events, "wake", orphans), 1);
  EXPECT_EQ(orphans, 0);

  // Finalizers and exits: every forked fiber exited once, after its finalizer.
  const auto forks = events_named(*events, "fork");
  EXPECT_EQ(events_named(*events, "exit").size(), forks.size());
  EXPECT_EQ(events_named(*events, "finalizer end").size(), forks.size());
  const Json* exit_sleeper = event_for(*events, "exit", ids.sleeper);
  ASSERT_NE(exit_sleeper, nullptr);
  EXPECT_EQ(exit_sleeper->args().str("result"), "interrupted");
  const Json* fin_sleeper = event_for(*events, "finalizer start", ids.sleeper);
  ASSERT_NE(fin_sleeper, nullptr);
  EXPECT_LE(fin_sleeper->num("ts"), exit_sleeper->num("ts"));
  const Json* exit_main = event_for(*events, "exit", ids.main);
  ASSERT_NE(exit_main, nullptr);
  EXPECT_EQ(exit_main->args().str("result"), "success");
  int interrupted_exits = 0;
  for (const Json* e : events_named(*events, "exit"))
    interrupted_exits += e->args().str("result") == "interrupted" ? 1 : 0;
  // The sleeper; the race's loser is contestant 0, which ran on main's own
  // stack (a RaceScope): its interrupt is one of main's, it has no exit.
  EXPECT_GE(interrupted_exits, 1);
}

// A program that writes more than one buffer's worth of events still yields
// one valid file (buffers are flushed while it runs).
TEST_P(TraceTest, test_trace_many_events_stay_valid_json) {
  const std::string path = ::testing::TempDir() + "weft_trace_many_" + std::to_string(::getpid()) +
                           "_" + std::to_string(GetParam()) + ".json";
  constexpr int kFibers = 500;
  {
    RuntimeOptions o;
    o.workers = GetParam();
    o.trace_path = path;
    Runtime rt(o);
    Exit<void> e = rt.block_on([] {
      for (int i = 0; i < kFibers; ++i) fork([] { this_fiber::yield(); }).join();
    });
    EXPECT_TRUE(e.ok()) << e;
  }
  const std::string text = read_file(path);
  std::remove(path.c_str());
  EXPECT_GT(text.size(), 64u * 1024u);
  JsonParser parser(text);
  const Json doc = parser.parse_document();
  ASSERT_TRUE(parser.ok());
  const Json* events = doc.get("traceEvents");
  ASSERT_NE(events, nullptr);
  EXPECT_EQ(events_named(*events, "fork").size(), kFibers + 1u);
  EXPECT_EQ(events_named(*events, "exit").size(), kFibers + 1u);
}

TEST(TraceOptions, test_trace_unwritable_path_throws) {
  RuntimeOptions o;
  o.workers = 1;
  o.trace_path = "/nonexistent-dir/trace.json";
  EXPECT_THROW(Runtime rt(o), std::system_error);
}

}  // namespace
}  // namespace weft
