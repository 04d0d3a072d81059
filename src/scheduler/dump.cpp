// Runtime::dump(): every live fiber as a tree, with what each waits on and
// where (docs/debugging.md, "Reading a dump").
//
// Two passes. The snapshot pass takes a new reference to every fiber
// (under the root list's mutex and each parent's children lock, without
// formatting) and copies what the dump shows: relaxed loads of diagnostic
// fields the owner writes, never a dereference of the object a fiber waits
// on. The render pass formats with no lock held, names the holder of a
// Mutex from the held-Mutex slots of the other fibers, and collapses
// siblings that wait at the same call site into one line with a count.
#include "scheduler/scheduler.hpp"

#include "fiber/fiber_control.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <string_view>
#include <tuple>

namespace weft::detail {

namespace {

constexpr std::size_t kMaxInterrupters = 4;  // listed by id; more are counted

// FiberSnap is one fiber as the dump shows it.
struct FiberSnap {
  FiberRef ref;
  FiberId id;
  std::string name;
  RunState state = RunState::runnable;
  bool interrupting = false;
  bool finalizing = false;
  bool masked = false;  // parked in a wait an interrupt cannot end
  const char* what = nullptr;
  const void* object = nullptr;
  weft::source_location site;
  std::int64_t waited_ns = 0;
  std::size_t interrupters = 0;
  FiberId interrupter_ids[kMaxInterrupters] = {};
  const void* held[FiberControl::kHeldSlots] = {};
  std::vector<std::size_t> children;  // indexes into the snapshot
};

const char* state_name(RunState s) {
  switch (s) {
    case RunState::runnable:
    case RunState::notified:
      return "runnable";
    case RunState::running:
      return "running";
    case RunState::parking:
    case RunState::parked:
      return "parked";
    case RunState::done:
      return "done";
  }
  return "?";
}

// file_name() is the last path component of a source file.
std::string_view file_name(const char* path) {
  std::string_view p(path);
  const std::size_t slash = p.rfind('/');
  return slash == std::string_view::npos ? p : p.substr(slash + 1);
}

std::string duration_text(std::int64_t ns) {
  if (ns < 1'000'000) return "<1ms";
  if (ns < 10'000'000'000) return fmt::format("{}ms", ns / 1'000'000);
  return fmt::format("{:.1f}s", static_cast<double>(ns) / 1e9);
}

class Renderer {
 public:
  explicit Renderer(std::vector<FiberSnap>& fibers) : fibers_(fibers) {
    for (std::size_t i = 0; i < fibers_.size(); ++i)
      for (const void* m : fibers_[i].held)
        if (m != nullptr) holder_[m] = i;
  }

  // render() writes the fibers listed in `siblings` (and their subtrees).
  void render(const std::vector<std::size_t>& siblings, int depth, std::string& out) {
    // Siblings without children that wait at the same place collapse.
    std::vector<std::vector<std::size_t>> groups;
    std::map<std::tuple<std::string, std::string, unsigned, const char*>, std::size_t> group_of;
    for (std::size_t i : siblings) {
      const FiberSnap& f = fibers_[i];
      if (f.children.empty() && f.interrupters == 0) {
        auto key = std::make_tuple(f.name, description(f), f.site.line(), f.site.file_name());
        auto [it, fresh] = group_of.try_emplace(key, groups.size());
        if (fresh) groups.emplace_back();
        groups[it->second].push_back(i);
      } else {
        groups.push_back({i});
      }
    }
    for (const auto& g : groups) {
      if (g.size() == 1) {
        line(fibers_[g.front()], depth, out);
        render(fibers_[g.front()].children, depth + 1, out);
      } else {
        collapsed(g, depth, out);
      }
    }
  }

 private:
  // description() is the state and the wait, without the duration.
  std::string description(const FiberSnap& f) const {
    std::string d = state_name(f.state);
    if (f.finalizing) {
      d += ", finalizing";
    } else if (f.interrupting) {
      d += ", interrupting";
    }
    if (f.what != nullptr) {
      d += fmt::format(" in {}", f.what);
      if (f.object != nullptr) d += fmt::format(" on {}", f.object);
      if (std::string_view(f.what).starts_with("Mutex::")) d += holder_text(f.object);
      if (f.masked) d += " (masked)";
    }
    return d;
  }

  std::string holder_text(const void* mutex) const {
    auto it = holder_.find(mutex);
    if (it == holder_.end()) return ", holder not a live fiber";
    const FiberSnap& h = fibers_[it->second];
    std::string t = fmt::format(", held by fiber {} '{}'", h.id, h.name);
    if (h.what != nullptr) t += fmt::format(" (itself in {})", h.what);
    return t;
  }

  static std::string site_text(const FiberSnap& f) {
    if (f.site.line() == 0) return "";
    return fmt::format(" at {}:{}", file_name(f.site.file_name()), f.site.line());
  }

  void line(const FiberSnap& f, int depth, std::string& out) const {
    out += fmt::format("{:{}}fiber {} '{}' {}", "", depth * 2, f.id, f.name, description(f));
    if (f.what != nullptr) out += fmt::format(" for {}", duration_text(f.waited_ns));
    out += f.what != nullptr ? site_text(f) : last_site_text(f);
    if (f.interrupters > 0) {
      out += ", interrupt pending from";
      const std::size_t listed = std::min(f.interrupters, kMaxInterrupters);
      for (std::size_t k = 0; k < listed; ++k)
        out += fmt::format("{}{}", k == 0 ? " " : ", ", f.interrupter_ids[k]);
      if (f.interrupters > listed) out += fmt::format(" and {} more", f.interrupters - listed);
    }
    for (const void* m : f.held)
      if (m != nullptr) out += fmt::format(", holds Mutex {}", m);
    out += '\n';
  }

  static std::string last_site_text(const FiberSnap& f) {
    if (f.site.line() == 0) return "";
    return fmt::format(", last yield point at {}:{}", file_name(f.site.file_name()), f.site.line());
  }

  void collapsed(const std::vector<std::size_t>& g, int depth, std::string& out) const {
    const FiberSnap& first = fibers_[g.front()];
    std::int64_t longest = 0;
    for (std::size_t i : g) longest = std::max(longest, fibers_[i].waited_ns);
    std::string ids;
    constexpr std::size_t kListed = 3;
    for (std::size_t k = 0; k < std::min(g.size(), kListed); ++k)
      ids += fmt::format("{}{}", k == 0 ? "" : ", ", fibers_[g[k]].id);
    if (g.size() > kListed) ids += ", ...";
    out += fmt::format("{:{}}{} fibers ({}) '{}' {}", "", depth * 2, g.size(), ids, first.name,
                       description(first));
    if (first.what != nullptr) {
      out += fmt::format("{}, the longest for {}\n", site_text(first), duration_text(longest));
    } else {
      out += last_site_text(first) + '\n';
    }
  }

  std::vector<FiberSnap>& fibers_;
  std::map<const void*, std::size_t> holder_;  // held Mutex -> the fiber holding it
};

// snapshot() copies what the dump shows of one fiber.
void snapshot(FiberSnap& s, const FiberControl& f, std::int64_t now) {
  s.id = f.id();
  s.name = f.name();
  s.state = f.run_state();
  s.interrupting = f.interrupting();
  s.finalizing = f.finalizing();
  s.site = f.core().site();
  for (int k = 0; k < FiberControl::kHeldSlots; ++k) s.held[k] = f.held(k);
  if (s.state == RunState::parked || s.state == RunState::parking) {
    s.what = f.blocked_on();
    s.object = f.blocked_object();
    s.waited_ns = now - f.parked_at();
    s.masked = f.waiting_masked();
  }
  if (f.interrupt_pending() && !s.interrupting)
    s.interrupters = f.interrupters_snapshot(s.interrupter_ids, kMaxInterrupters);
}

}  // namespace

std::string Scheduler::dump() const {
  const std::int64_t now = coarse_now_ns();
  std::vector<FiberSnap> fibers;
  std::vector<std::size_t> roots;
  std::vector<FiberRef> refs;
  {
    std::lock_guard lk(roots_mu_);  // a mutex: allocating under it is allowed
    for (FiberControl* f = roots_.front(); f != nullptr; f = RootList::next(*f)) {
      f->core().retain();
      refs.emplace_back(&f->core());
    }
  }
  // Depth first, children after their parent (the order of fork).
  std::vector<std::pair<FiberRef, std::size_t>> todo;  // (fiber, parent index or npos)
  constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  for (auto it = refs.rbegin(); it != refs.rend(); ++it) todo.emplace_back(std::move(*it), kNone);
  std::vector<FiberRef> children;
  while (!todo.empty()) {
    auto [ref, parent] = std::move(todo.back());
    todo.pop_back();
    FiberControl& f = control(*ref.get());
    const std::size_t index = fibers.size();
    fibers.emplace_back();
    snapshot(fibers.back(), f, now);
    fibers.back().ref = std::move(ref);
    (parent == kNone ? roots : fibers[parent].children).push_back(index);
    children.clear();
    f.children_snapshot(children, /*live_only=*/false);
    for (auto it = children.rbegin(); it != children.rend(); ++it)
      todo.emplace_back(std::move(*it), index);
  }
  std::string out = fmt::format("weft runtime '{}': {} fibers, {} workers\n", options_.name,
                                fibers.size(), workers_.size());
  Renderer(fibers).render(roots, 1, out);
  return out;
}

}  // namespace weft::detail
