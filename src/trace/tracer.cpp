// Tracer: the trace file's events (format: docs/debugging-trace-stats.md).
#include "trace/tracer.hpp"

#include "fiber/fiber_control.hpp"
#include "scheduler/scheduler.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <iterator>
#include <system_error>

namespace weft::detail {

namespace {

// json_escape() appends s escaped for the inside of a JSON string literal.
void json_escape(std::string& out, std::string_view s) {
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          fmt::format_to(std::back_inserter(out), "\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out += c;
        }
    }
  }
}

// json_string() appends s as a JSON string literal (quotes included).
void json_string(std::string& out, std::string_view s) {
  out += '"';
  json_escape(out, s);
  out += '"';
}

unsigned tid_of(const Worker* w) noexcept { return w != nullptr ? w->index() + 1 : 0; }

// put_ts() appends nanoseconds as the format's microseconds.
void put_ts(std::string& out, std::int64_t ns) {
  fmt::format_to(std::back_inserter(out), "{}.{:03}", ns / 1000, ns % 1000);
}

const char* exit_name(ExitKind k) noexcept {
  switch (k) {
    case ExitKind::success:
      return "success";
    case ExitKind::failure:
      return "failure";
    case ExitKind::interrupted:
      return "interrupted";
  }
  return "?";
}

}  // namespace

Tracer::Tracer(const std::string& path, const std::string& runtime_name, unsigned workers)
    : buffers_(workers), file_(std::fopen(path.c_str(), "w")) {
  if (file_ == nullptr)
    throw std::system_error(errno, std::generic_category(),
                            fmt::format("weft: RuntimeOptions::trace_path '{}'", path));
  std::string head = R"({"displayTimeUnit":"ns","traceEvents":[)";
  head += "\n";
  head += R"({"ph":"M","name":"process_name","pid":1,"args":{"name":)";
  json_string(head, "weft " + runtime_name);
  head += "}}";
  head +=
      ",\n"
      R"({"ph":"M","name":"thread_name","pid":1,"tid":0,"args":{"name":"outside"}})";
  for (unsigned i = 0; i < workers; ++i)
    fmt::format_to(std::back_inserter(head),
                   ",\n{{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":1,\"tid\":{},"
                   "\"args\":{{\"name\":\"worker {}\"}}}}",
                   i + 1, i);
  flush(head);
}

Tracer::~Tracer() {
  if (file_ != nullptr) finish();
}

std::int64_t Tracer::now_ns() const noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                              start_)
      .count();
}

template <class Write>
void Tracer::append(Worker* w, Write write) {
  if (w != nullptr) {
    std::string& text = buffers_[w->index()].text;
    write(text);
    if (text.size() >= kFlushBytes) flush(text);
    return;
  }
  std::lock_guard lk(outside_mu_);
  write(outside_);
  if (outside_.size() >= kFlushBytes) flush(outside_);
}

void Tracer::flush(std::string& text) {
  std::lock_guard lk(file_mu_);
  if (file_ != nullptr && !text.empty()) std::fwrite(text.data(), 1, text.size(), file_);
  text.clear();  // keeps its capacity: the next events do not allocate
}

template <class Args>
void Tracer::instant(Worker* w, const char* name, std::uint64_t fiber, std::int64_t ts, Args args) {
  append(w, [&](std::string& out) {
    fmt::format_to(std::back_inserter(out),
                   ",\n{{\"ph\":\"i\",\"s\":\"t\",\"name\":\"{}\",\"pid\":1,\"tid\":{},\"ts\":",
                   name, tid_of(w));
    put_ts(out, ts);
    fmt::format_to(std::back_inserter(out), ",\"args\":{{\"fiber\":{}", fiber);
    args(out);
    out += "}}";
  });
}

void Tracer::instant(Worker* w, const char* name, std::uint64_t fiber) {
  instant(w, name, fiber, now_ns(), [](std::string&) {});
}

void Tracer::flow(Worker* w, bool start, const char* kind, std::uint64_t id, std::int64_t ts) {
  append(w, [&](std::string& out) {
    fmt::format_to(std::back_inserter(out),
                   ",\n{{\"ph\":\"{}\",{}\"cat\":\"{}\",\"name\":\"{}\",\"id\":{},\"pid\":1,"
                   "\"tid\":{},\"ts\":",
                   start ? "s" : "f", start ? "" : "\"bp\":\"e\",", kind, kind, id, tid_of(w));
    put_ts(out, ts);
    out += '}';
  });
}

void Tracer::fork(Worker* w, const FiberControl& f, std::uint64_t parent) {
  instant(w, "fork", f.id().value(), now_ns(), [&](std::string& out) {
    out += ",\"name\":";
    json_string(out, f.name());
    fmt::format_to(std::back_inserter(out), ",\"parent\":{}", parent);
  });
}

std::int64_t Tracer::run_begin(Worker& w, const FiberControl& f) {
  const std::int64_t start = now_ns();
  if (std::uint64_t id = take_pending(f.id().value(), 0)) flow(&w, false, "wake", id, start);
  return start;
}

void Tracer::run_end(Worker& w, const FiberControl& f, std::int64_t start_ns) {
  const std::int64_t end = now_ns();
  append(&w, [&](std::string& out) {
    fmt::format_to(std::back_inserter(out), ",\n{{\"ph\":\"X\",\"name\":\"fiber {}",
                   f.id().value());
    if (!f.name().empty()) {
      out += ' ';
      json_escape(out, f.name());
    }
    fmt::format_to(std::back_inserter(out),
                   "\",\"cat\":\"run\",\"pid\":1,\"tid\":{},\"ts\":", tid_of(&w));
    put_ts(out, start_ns);
    out += ",\"dur\":";
    put_ts(out, end - start_ns);
    fmt::format_to(std::back_inserter(out), ",\"args\":{{\"fiber\":{}}}}}", f.id().value());
  });
}

void Tracer::park(Worker* w, const FiberControl& f, const char* what, const char* file,
                  unsigned line) {
  instant(w, "park", f.id().value(), now_ns(), [&](std::string& out) {
    out += ",\"what\":";
    json_string(out, what != nullptr ? what : "wait");
    if (file == nullptr) return;
    // The last path component, as Runtime::dump() prints it.
    const std::string_view path(file);
    out += ",\"site\":\"";
    json_escape(out, path.substr(path.find_last_of('/') + 1));
    fmt::format_to(std::back_inserter(out), ":{}\"", line);
  });
}

void Tracer::wake(Worker* w, const FiberControl& f) {
  const FiberCore* waker = current_fiber();
  const std::uint64_t by = waker != nullptr ? waker->id().value() : 0;
  const std::uint64_t id = next_flow_.fetch_add(1, std::memory_order_relaxed);
  const std::int64_t ts = now_ns();  // the event and its flow's start at one time
  instant(w, "wake", f.id().value(), ts,
          [&](std::string& out) { fmt::format_to(std::back_inserter(out), ",\"by\":{}", by); });
  flow(w, true, "wake", id, ts);
  set_pending(f.id().value(), 0, id);
}

void Tracer::steal(Worker& w, const FiberControl& f, unsigned from) {
  instant(&w, "steal", f.id().value(), now_ns(),
          [&](std::string& out) { fmt::format_to(std::back_inserter(out), ",\"from\":{}", from); });
}

void Tracer::interrupt_requested(Worker* w, const FiberControl& f, FiberId by) {
  const std::uint64_t id = next_flow_.fetch_add(1, std::memory_order_relaxed);
  const std::int64_t ts = now_ns();
  instant(w, "interrupt requested", f.id().value(), ts, [&](std::string& out) {
    fmt::format_to(std::back_inserter(out), ",\"by\":{}", by.value());
  });
  flow(w, true, "interrupt", id, ts);
  set_pending(f.id().value(), 1, id);
}

void Tracer::interrupt_delivered(Worker* w, const FiberControl& f) {
  const std::int64_t ts = now_ns();
  instant(w, "interrupt delivered", f.id().value(), ts, [](std::string&) {});
  if (std::uint64_t id = take_pending(f.id().value(), 1)) flow(w, false, "interrupt", id, ts);
}

void Tracer::finalizer(Worker* w, const FiberControl& f, bool start) {
  instant(w, start ? "finalizer start" : "finalizer end", f.id().value());
}

void Tracer::exit(Worker* w, const FiberControl& f, ExitKind kind) {
  (void)take_pending(f.id().value(), 1);  // a request that was never delivered
  instant(w, "exit", f.id().value(), now_ns(), [&](std::string& out) {
    fmt::format_to(std::back_inserter(out), ",\"result\":\"{}\"", exit_name(kind));
  });
}

void Tracer::set_pending(std::uint64_t fiber, int kind, std::uint64_t flow) {
  const std::uint64_t key = fiber * 2 + static_cast<std::uint64_t>(kind);
  PendingShard& shard = pending_[key % kShards];
  std::lock_guard lk(shard.mu);
  shard.flows[key] = flow;  // a newer request or wake replaces an unfinished one
}

std::uint64_t Tracer::take_pending(std::uint64_t fiber, int kind) {
  const std::uint64_t key = fiber * 2 + static_cast<std::uint64_t>(kind);
  PendingShard& shard = pending_[key % kShards];
  std::lock_guard lk(shard.mu);
  auto it = shard.flows.find(key);
  if (it == shard.flows.end()) return 0;
  const std::uint64_t flow = it->second;
  shard.flows.erase(it);
  return flow;
}

void Tracer::finish() {
  for (Buffer& b : buffers_) flush(b.text);
  {
    std::lock_guard lk(outside_mu_);
    flush(outside_);
  }
  std::lock_guard lk(file_mu_);
  std::fputs("\n]}\n", file_);
  std::fclose(file_);
  file_ = nullptr;
}

}  // namespace weft::detail
