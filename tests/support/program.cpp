// run_program(): runs a decoded Plan and checks the invariants listed in
// program.hpp. Every fiber of the program has a Record written by the fiber
// itself (read only after it ended) and, when forked with a handle, its Exit
// is compared with what the record says happened.
#include "support/program.hpp"

#include "support/program_plan.hpp"

#include <weft/weft.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace weft::test {

namespace {

struct ProgramFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Record {
  FiberId parent;
  FiberId id;
  bool started = false;
  bool completed = false;  // the body returned
  bool threw = false;      // the fiber threw a ProgramFailure (body or finalizer)
  int installed = 0;       // finalizers installed
  int ran = 0;             // finalizers run
  std::vector<int> armed;  // installed, not yet run: the last must run first
  int lifo_violations = 0;
  std::vector<FiberId> targeted_by;  // guarded by World::mu
  Fiber<void> handle;                // empty for race contestants and timeout tasks
};

struct World {
  explicit World(const Plan& p)
      : channel(p.channel_capacity),
        permits(p.permits),
        latch(p.latch_count),
        latch_left(p.latch_count) {}

  std::mutex mu;
  std::deque<Record> records;        // stable addresses; guarded by mu
  std::vector<Record*> targets;      // records with a handle; guarded by mu
  std::vector<long> sent, received;  // guarded by mu
  std::uint64_t trace = 0;           // guarded by mu
  std::atomic<long> next_item{0}, interrupts{0};
  std::atomic<std::uint32_t> offered_values{0};  // bit v%32: someone offered v to the Deferred

  Channel<long> channel;
  Mutex mutex;
  Semaphore permits;
  Latch latch;
  std::atomic<long> latch_left;
  Deferred<int> deferred;

  Record* add(FiberId parent) {
    std::lock_guard lk(mu);
    Record& r = records.emplace_back();
    r.parent = parent;
    return &r;
  }
  // step() folds (fiber record, operation) into the trace: same trace, same
  // interleaving.
  void step(const Record* r, Op op) {
    std::lock_guard lk(mu);
    const auto index = static_cast<std::uint64_t>(
        std::find_if(records.begin(), records.end(), [&](const Record& x) { return &x == r; }) -
        records.begin());
    trace = (trace ^ (index * 64 + static_cast<std::uint64_t>(op))) * 0x100000001B3ull;
  }
};

// Runner executes a block on the fiber that owns the record r_; it reads the
// fiber's id from this_fiber::id(), never from the record (which the parent
// may be writing at the same moment).
class Runner {
 public:
  Runner(World& w, Record* r) : w_(w), r_(r) {}

  void run(const std::vector<Node>& block) {
    for (const Node& n : block) exec(n);
  }

  // body() is a fiber's whole life from its record's point of view.
  static void body(World& w, Record* r, const std::vector<Node>& block) {
    r->started = true;
    {
      // The parent writes the same id after fork() returns (under the lock):
      // this fiber may already run on another worker by then.
      std::lock_guard lk(w.mu);
      r->id = this_fiber::id();
    }
    Runner(w, r).run(block);
    r->completed = true;
  }

 private:
  void exec(const Node& n) {
    w_.step(r_, n.op);
    switch (n.op) {
      case Op::yield:
        this_fiber::yield();
        break;
      case Op::sleep:
        this_fiber::sleep_for(std::chrono::microseconds(n.arg % 50));
        break;
      case Op::compute:
        for (int i = 0; i < 64 * n.arg; ++i) {
          if (i % 64 == 0) this_fiber::check_interrupt();
        }
        break;
      case Op::mask:
        mask(n);
        break;
      case Op::fork:
        kids_.push_back(fork_child(n.body, [](auto f) { return weft::fork(f); }));
        break;
      case Op::await_kid:
        if (!kids_.empty()) (void)kids_[n.arg % kids_.size()].await();
        break;
      case Op::interrupt_kid:
        if (!kids_.empty()) {
          Fiber<void>& kid = kids_[n.arg % kids_.size()];
          target(kid.id());
          (void)kid.interrupt();
        }
        break;
      case Op::interrupt_any:
        interrupt_any(n.arg);
        break;
      case Op::self_interrupt:
        target(this_fiber::id());
        weft::interrupt();
        break;
      case Op::swallow:
        try {
          this_fiber::yield();
        } catch (const Interrupted&) {
          // swallowed: the request stays pending, the next yield point throws
        }
        break;
      case Op::fail:
        if (n.arg % 4 == 0) {
          r_->threw = true;
          throw ProgramFailure("program failure");
        }
        break;
      case Op::finalizer:
        finalizer(n);
        break;
      case Op::send:
        send();
        break;
      case Op::receive:
        if (std::optional<long> v = w_.channel.receive()) {
          std::lock_guard lk(w_.mu);
          w_.received.push_back(*v);
        }
        break;
      case Op::lock: {
        std::lock_guard lk(w_.mutex);
        run(n.body);
        break;
      }
      case Op::acquire: {
        SemaphorePermit permit(w_.permits);
        run(n.body);
        break;
      }
      case Op::latch:
        if (w_.latch_left.fetch_sub(1) > 0) w_.latch.count_down();
        w_.latch.wait();
        break;
      case Op::deferred_set:
        w_.offered_values.fetch_or(1u << (n.arg % 32));
        (void)w_.deferred.try_succeed(n.arg % 32);
        break;
      case Op::deferred_get: {
        const int v = w_.deferred.await();
        if ((w_.offered_values.load() & (1u << v)) == 0)
          throw std::logic_error(fmt::format("Deferred delivered {}, which nobody offered", v));
        break;
      }
      case Op::scope:
        scope(n);
        break;
      case Op::race:
        race(n);
        break;
      case Op::timeout: {
        const FiberId me = this_fiber::id();
        Record* const own = r_;
        (void)timeout_exit(std::chrono::microseconds(n.arg), [this, me, own, &n] {
          if (this_fiber::id() == me) {
            // On this fiber's own stack (a TimeoutScope): the task's code is
            // this fiber's, and so are its finalizers and what it throws.
            Runner(w_, own).run(n.body);
            return;
          }
          Record* r = w_.add(me);  // forked: a fiber of its own
          body(w_, r, n.body);
        });
        break;
      }
      case Op::count_:
        break;
    }
  }

  void mask(const Node& n) {
    if (this_fiber::interruptible()) {
      Uninterruptible guard;
      run(n.body);
    } else {
      Interruptible guard;
      run(n.body);
    }
  }

  // fork_child() records and forks a child running `block` through `forker`
  // (weft::fork or Scope::fork) and makes it an interrupt target.
  template <class Forker>
  Fiber<void> fork_child(const std::vector<Node>& block, Forker forker) {
    Record* child = w_.add(this_fiber::id());
    World& w = w_;
    Fiber<void> h = forker([&w, child, &block] { body(w, child, block); });
    std::lock_guard lk(w_.mu);
    child->id = h.id();
    child->handle = h;
    w_.targets.push_back(child);
    return h;
  }

  void target(FiberId id) {
    std::lock_guard lk(w_.mu);
    for (Record& r : w_.records) {
      if (r.id == id) r.targeted_by.push_back(this_fiber::id());
    }
    w_.interrupts.fetch_add(1, std::memory_order_relaxed);
  }

  void interrupt_any(std::uint8_t pick) {
    Fiber<void> victim;
    {
      std::lock_guard lk(w_.mu);
      if (w_.targets.empty()) return;
      Record* r = w_.targets[pick % w_.targets.size()];
      if (r == r_) return;
      r->targeted_by.push_back(this_fiber::id());
      victim = r->handle;
    }
    w_.interrupts.fetch_add(1, std::memory_order_relaxed);
    victim.interrupt_fork();
  }

  void finalizer(const Node& n) {
    const int k = r_->installed++;
    r_->armed.push_back(k);
    const int kind = n.arg % 3;
    Record* r = r_;
    OnExit fin([r, k, kind] {
      if (kind == 1) this_fiber::yield();  // masked: a finalizer may suspend
      if (r->armed.empty() || r->armed.back() != k) ++r->lifo_violations;
      if (!r->armed.empty()) r->armed.pop_back();
      ++r->ran;
      if (kind == 2) {
        r->threw = true;
        throw ProgramFailure("finalizer failure");
      }
    });
    run(n.body);
  }

  void send() {
    const long item = w_.next_item.fetch_add(1);
    w_.channel.send(item);
    std::lock_guard lk(w_.mu);
    w_.sent.push_back(item);
  }

  void scope(const Node& n) {
    Scope s;
    for (const Node& c : n.body)
      kids_.push_back(fork_child(c.body, [&s](auto f) { return s.fork(std::move(f)); }));
    try {
      s.join();
    } catch (const ProgramFailure&) {
      // a child's failure, reported by join(): the child's own Exit says so
    } catch (const CauseError&) {
    }
  }

  void race(const Node& n) {
    const FiberId me = this_fiber::id();
    std::vector<std::function<void()>> contestants;
    Record* const own = r_;
    for (const Node& c : n.body) {
      contestants.emplace_back([this, me, own, &c] {
        if (this_fiber::id() == me) {
          // Contestant 0 on this fiber's own stack (a RaceScope): its code
          // is this fiber's, and so are its finalizers and what it throws.
          Runner(w_, own).run(c.body);
          return;
        }
        Record* r = w_.add(me);  // forked: a fiber of its own
        body(w_, r, c.body);
      });
    }
    (void)race_exit(contestants);
  }

  World& w_;
  Record* r_;
  std::vector<Fiber<void>> kids_;
};

// check() compares every record with its fiber's Exit; the first violation.
std::string check(World& w) {
  for (std::size_t i = 0; i < w.records.size(); ++i) {
    Record& r = w.records[i];
    auto where = [&] { return fmt::format("fiber {} (record {}, parent {})", r.id, i, r.parent); };
    if (r.ran != r.installed)
      return fmt::format("{}: {} of {} finalizers ran", where(), r.ran, r.installed);
    if (r.lifo_violations != 0) return fmt::format("{}: finalizers out of LIFO order", where());
    if (!r.handle.valid()) continue;
    if (!r.handle.done()) return fmt::format("{}: still running after the program", where());
    const Exit<void> x = r.handle.await();
    if (!r.started && !x.interrupted())
      return fmt::format("{}: never started, yet its Exit is {}", where(), x);
    if (x.ok() && !r.completed) return fmt::format("{}: Exit ok, body did not return", where());
    if (x.cause().has_failure() && !r.threw)
      return fmt::format("{}: failed without throwing: {}", where(), x.cause().pretty());
    for (FiberId by : x.cause().interruptors()) {
      const bool asked =
          std::find(r.targeted_by.begin(), r.targeted_by.end(), by) != r.targeted_by.end();
      if (!asked && by != r.parent)
        return fmt::format("{}: interrupted by {}, which never targeted it", where(), by);
    }
  }
  // Channel: every item sent arrived once, or is still buffered.
  std::vector<long> got = w.received;
  while (std::optional<long> v = w.channel.try_receive()) got.push_back(*v);
  std::vector<long> sent = w.sent;
  std::sort(got.begin(), got.end());
  std::sort(sent.begin(), sent.end());
  if (got != sent)
    return fmt::format("channel: {} items sent, {} received or buffered, not the same items",
                       sent.size(), got.size());
  return {};
}

// settle() waits (bounded) for the runtime to end every fiber, return every
// stack and free every fiber object the program made.
bool settle(Runtime& rt, std::int64_t objects_before) {
  const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (rt.stats().live_fibers != 0 || rt.stats().stacks_in_use != 0 ||
         detail::live_fiber_objects() > objects_before) {
    if (std::chrono::steady_clock::now() > limit) return false;
    std::this_thread::yield();
  }
  return true;
}

}  // namespace

ProgramResult run_program(Runtime& rt, std::span<const std::uint8_t> bytes) {
  const Plan plan = decode(bytes);
  const std::int64_t objects_before = detail::live_fiber_objects();
  ProgramResult result;
  {
    World w(plan);
    const Exit<void> root = rt.block_on([&] {
      Record* self = w.add(FiberId{});
      self->started = true;
      self->id = this_fiber::id();
      // The top-level fibers are the root's children: at the end of its
      // body the supervision rules interrupt and await whatever is left.
      Runner(w, self).run(plan.tops);
      this_fiber::sleep_for(std::chrono::microseconds(plan.grace_us));
      self->completed = true;
    });
    if (!root.ok()) result.error = fmt::format("root fiber: {}", root);
    if (result.error.empty()) result.error = check(w);
    result.fibers = static_cast<long>(w.records.size()) - 1;
    for (const Record& r : w.records) result.finalizers += r.ran;
    result.interrupts = w.interrupts.load();
    result.items = static_cast<long>(w.received.size());
    result.trace = w.trace;
  }
  if (!settle(rt, objects_before) && result.error.empty())
    result.error = fmt::format("leak: {} fibers live, {} stacks in use, {} fiber objects",
                               rt.stats().live_fibers, rt.stats().stacks_in_use,
                               detail::live_fiber_objects() - objects_before);
  return result;
}

}  // namespace weft::test
