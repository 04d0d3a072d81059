// Tests for the per-worker timer heap (src/timer/timer_heap.hpp).
#include "timer/timer_heap.hpp"

#include <gtest/gtest.h>

#ifdef __linux__
#include <pthread.h>
#include <sched.h>
#endif

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <latch>
#include <memory>
#include <random>
#include <thread>
#include <vector>

namespace weft::detail {
namespace {

using std::chrono::nanoseconds;

// An arbitrary fixed origin: the heap never reads the clock itself.
const Clock::time_point kT0 = Clock::time_point(std::chrono::hours(1000));

Clock::time_point at(std::int64_t ns) { return kT0 + nanoseconds(ns); }

// Recorder: the fire callback appends the entry to `log` (user points here).
struct Recorder {
  std::vector<const TimerEntry*> log;
};

void record_fire(TimerEntry* e) { static_cast<Recorder*>(e->user)->log.push_back(e); }

std::vector<TimerEntry> make_entries(std::size_t n, Recorder& rec) {
  std::vector<TimerEntry> entries(n);
  for (auto& e : entries) {
    e.fire = &record_fire;
    e.user = &rec;
  }
  return entries;
}

TEST(TimerTest, test_timer_fires_random_deadlines_in_deadline_order) {
  constexpr std::size_t kN = 10'000;
  Recorder rec;
  auto entries = make_entries(kN, rec);
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<std::int64_t> dist(0, 1'000'000);
  TimerHeap heap;
  for (auto& e : entries) {
    e.deadline = at(dist(rng));
    heap.insert(&e);
  }
  EXPECT_EQ(heap.size(), kN);
  EXPECT_TRUE(heap.check_invariants());

  // Fire in ten steps: each call fires exactly the entries due by then.
  std::size_t fired = 0;
  for (std::int64_t step = 1; step <= 10; ++step) {
    const Clock::time_point now = at(step * 100'000);
    const std::size_t before = rec.log.size();
    fired += heap.fire_expired(now);
    ASSERT_EQ(rec.log.size(), fired);
    for (std::size_t i = before; i < rec.log.size(); ++i) ASSERT_LE(rec.log[i]->deadline, now);
    if (heap.size() > 0) {
      EXPECT_GT(*heap.next_deadline(), now);
    }
    ASSERT_TRUE(heap.check_invariants());
  }
  ASSERT_EQ(fired, kN);
  ASSERT_TRUE(std::is_sorted(rec.log.begin(), rec.log.end(),
                             [](auto* a, auto* b) { return a->deadline < b->deadline; }));
  // Equal deadlines (the birthday paradox guarantees some) in insertion order.
  for (std::size_t i = 1; i < kN; ++i) {
    if (rec.log[i]->deadline == rec.log[i - 1]->deadline) {
      ASSERT_LT(rec.log[i - 1], rec.log[i]);
    }
  }
  EXPECT_EQ(heap.size(), 0u);
  EXPECT_EQ(heap.next_deadline(), std::nullopt);
}

TEST(TimerTest, test_timer_equal_deadlines_fire_in_insertion_order) {
  Recorder rec;
  auto entries = make_entries(1000, rec);
  TimerHeap heap;
  // Interleave two deadlines so ties are spread all over the heap.
  for (std::size_t i = 0; i < entries.size(); ++i) {
    entries[i].deadline = at(i % 2 == 0 ? 500 : 100);
    heap.insert(&entries[i]);
  }
  EXPECT_EQ(heap.fire_expired(at(1000)), entries.size());
  ASSERT_EQ(rec.log.size(), entries.size());
  for (std::size_t i = 0; i < 500; ++i) EXPECT_EQ(rec.log[i], &entries[2 * i + 1]);
  for (std::size_t i = 0; i < 500; ++i) EXPECT_EQ(rec.log[500 + i], &entries[2 * i]);
}

TEST(TimerTest, test_timer_cancel_head_middle_last_keeps_heap_consistent) {
  Recorder rec;
  auto entries = make_entries(1000, rec);
  TimerHeap heap;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    entries[i].deadline = at(static_cast<std::int64_t>((i * 7919) % 1000));  // a permutation
    heap.insert(&entries[i]);
  }
  std::vector<bool> cancelled(entries.size(), false);
  for (int round = 0; round < 300; ++round) {
    // Find the head, a middle entry and the last slot through contains/deadlines.
    TimerEntry* head = nullptr;
    for (auto& e : entries) {
      if (heap.contains(&e) && (head == nullptr || e.deadline < head->deadline)) head = &e;
    }
    TimerEntry* last = nullptr;
    TimerEntry* middle = nullptr;
    for (auto& e : entries) {
      if (!heap.contains(&e)) continue;
      if (last == nullptr || e.index_ > last->index_) last = &e;
      if (e.index_ == heap.size() / 2) middle = &e;
    }
    for (TimerEntry* victim : {head, middle, last}) {
      if (victim == nullptr || !heap.contains(victim)) continue;
      ASSERT_LE(*heap.next_deadline(), victim->deadline);
      ASSERT_TRUE(heap.cancel(victim));
      EXPECT_FALSE(heap.contains(victim));
      EXPECT_FALSE(heap.cancel(victim));  // a second cancel finds nothing
      cancelled[static_cast<std::size_t>(victim - entries.data())] = true;
      ASSERT_TRUE(heap.check_invariants()) << "round " << round;
    }
  }
  std::size_t pending = 0;
  for (bool c : cancelled) pending += c ? 0 : 1;
  EXPECT_EQ(heap.size(), pending);
  EXPECT_EQ(heap.fire_expired(at(1'000'000)), pending);
  for (const TimerEntry* e : rec.log)
    EXPECT_FALSE(cancelled[static_cast<std::size_t>(e - entries.data())]);
  EXPECT_EQ(heap.size(), 0u);
}

TEST(TimerTest, test_timer_cancel_after_fire_returns_false) {
  Recorder rec;
  auto entries = make_entries(3, rec);
  TimerHeap heap;
  entries[0].deadline = at(10);
  entries[1].deadline = at(20);
  entries[2].deadline = at(30);
  for (auto& e : entries) heap.insert(&e);
  EXPECT_EQ(heap.fire_expired(at(20)), 2u);
  EXPECT_FALSE(heap.cancel(&entries[0]));
  EXPECT_FALSE(heap.cancel(&entries[1]));
  EXPECT_TRUE(heap.cancel(&entries[2]));
  EXPECT_FALSE(heap.cancel(&entries[2]));
  EXPECT_EQ(heap.fire_expired(at(1000)), 0u);
  EXPECT_EQ(rec.log.size(), 2u);
  EXPECT_EQ(heap.size(), 0u);
}

TEST(TimerTest, test_timer_cancel_of_never_inserted_entry_returns_false) {
  Recorder rec;
  auto entries = make_entries(1, rec);
  TimerHeap heap;
  EXPECT_FALSE(heap.cancel(&entries[0]));
  EXPECT_FALSE(heap.contains(&entries[0]));
  TimerHeap other;  // an entry of another heap's past is not ours either
  entries[0].deadline = at(1);
  other.insert(&entries[0]);
  EXPECT_TRUE(other.cancel(&entries[0]));
  EXPECT_FALSE(heap.cancel(&entries[0]));
}

TEST(TimerTest, test_timer_entry_is_reusable_after_fire_and_cancel) {
  Recorder rec;
  auto entries = make_entries(1, rec);
  TimerEntry& e = entries[0];
  TimerHeap heap;
  for (int i = 0; i < 100; ++i) {
    e.deadline = at(i);
    heap.insert(&e);
    if (i % 2 == 0) {
      EXPECT_EQ(heap.fire_expired(at(i)), 1u);
    } else {
      EXPECT_TRUE(heap.cancel(&e));
    }
    EXPECT_EQ(e.index_, TimerEntry::npos);
  }
  EXPECT_EQ(rec.log.size(), 50u);
}

TEST(TimerTest, test_timer_next_deadline_updates) {
  Recorder rec;
  auto entries = make_entries(3, rec);
  TimerHeap heap;
  EXPECT_EQ(heap.next_deadline(), std::nullopt);
  entries[0].deadline = at(300);
  heap.insert(&entries[0]);
  EXPECT_EQ(heap.next_deadline(), at(300));
  entries[1].deadline = at(100);
  heap.insert(&entries[1]);
  EXPECT_EQ(heap.next_deadline(), at(100));
  entries[2].deadline = at(200);
  heap.insert(&entries[2]);
  EXPECT_EQ(heap.next_deadline(), at(100));
  EXPECT_TRUE(heap.cancel(&entries[1]));  // cancelling the head moves it later
  EXPECT_EQ(heap.next_deadline(), at(200));
  EXPECT_EQ(heap.fire_expired(at(250)), 1u);
  EXPECT_EQ(heap.next_deadline(), at(300));
  EXPECT_EQ(heap.fire_expired(at(299)), 0u);  // strictly before: not due
  EXPECT_EQ(heap.fire_expired(at(300)), 1u);  // deadline <= now fires
  EXPECT_EQ(heap.next_deadline(), std::nullopt);
}

TEST(TimerTest, test_timer_size_returns_to_zero) {
  Recorder rec;
  auto entries = make_entries(5000, rec);
  TimerHeap heap;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    entries[i].deadline = at(static_cast<std::int64_t>(i % 97));
    heap.insert(&entries[i]);
    EXPECT_EQ(heap.size(), i + 1);
  }
  for (std::size_t i = 0; i < entries.size(); i += 2) EXPECT_TRUE(heap.cancel(&entries[i]));
  EXPECT_EQ(heap.size(), 2500u);
  EXPECT_EQ(heap.fire_expired(at(1000)), 2500u);
  EXPECT_EQ(heap.size(), 0u);
  EXPECT_TRUE(heap.check_invariants());
}

TEST(TimerTest, test_timer_million_insert_cancel_cycles_leave_size_zero) {
  Recorder rec;
  auto entries = make_entries(64, rec);
  std::mt19937_64 rng(3);
  TimerHeap heap;
  // A standing population of 32 plus 1e6 insert+cancel cycles through the rest.
  for (std::size_t i = 0; i < 32; ++i) {
    entries[i].deadline = at(static_cast<std::int64_t>(rng() % 1000));
    heap.insert(&entries[i]);
  }
  for (std::size_t cycle = 0; cycle < 1'000'000; ++cycle) {
    TimerEntry& e = entries[32 + cycle % 32];
    e.deadline = at(static_cast<std::int64_t>(rng() % 1000));
    heap.insert(&e);
    ASSERT_TRUE(heap.cancel(&e));
  }
  EXPECT_EQ(heap.size(), 32u);
  EXPECT_TRUE(heap.check_invariants());
  for (std::size_t i = 0; i < 32; ++i) EXPECT_TRUE(heap.cancel(&entries[i]));
  EXPECT_EQ(heap.size(), 0u);
  EXPECT_EQ(heap.next_deadline(), std::nullopt);
  EXPECT_TRUE(rec.log.empty());
}

TEST(TimerTest, test_timer_random_operations_match_a_model) {
  // Random insert / cancel / fire_expired against an independent model: a
  // pending flag and an insertion number per entry.
  constexpr std::size_t kN = 500;
  Recorder rec;
  auto entries = make_entries(kN, rec);
  std::vector<bool> pending(kN, false);
  std::vector<std::uint64_t> inserted_at(kN, 0);
  std::uint64_t next_insertion = 0;
  std::size_t pending_count = 0;
  std::int64_t now = 0;
  std::mt19937_64 rng(11);
  TimerHeap heap;
  for (int op = 0; op < 200'000; ++op) {
    const std::size_t k = rng() % kN;
    TimerEntry& e = entries[k];
    const unsigned kind = rng() % 16;
    if (kind < 8) {  // insert (when not pending)
      if (pending[k]) continue;
      e.deadline = at(now + static_cast<std::int64_t>(rng() % 500));
      heap.insert(&e);
      pending[k] = true;
      inserted_at[k] = next_insertion++;
      ++pending_count;
    } else if (kind < 15) {  // cancel
      ASSERT_EQ(heap.contains(&e), pending[k]);
      ASSERT_EQ(heap.cancel(&e), pending[k]);
      pending_count -= pending[k] ? 1 : 0;
      pending[k] = false;
    } else {  // advance the clock and fire
      now += static_cast<std::int64_t>(rng() % 200);
      std::vector<std::size_t> due;
      for (std::size_t i = 0; i < kN; ++i) {
        if (pending[i] && entries[i].deadline <= at(now)) due.push_back(i);
      }
      std::sort(due.begin(), due.end(), [&](std::size_t x, std::size_t y) {
        if (entries[x].deadline != entries[y].deadline) {
          return entries[x].deadline < entries[y].deadline;
        }
        return inserted_at[x] < inserted_at[y];
      });
      std::vector<const TimerEntry*> expect;
      for (std::size_t i : due) {
        expect.push_back(&entries[i]);
        pending[i] = false;
      }
      pending_count -= due.size();
      rec.log.clear();
      ASSERT_EQ(heap.fire_expired(at(now)), expect.size());
      ASSERT_EQ(rec.log, expect);
    }
    ASSERT_EQ(heap.size(), pending_count);
    if (op % 1000 == 0) {
      ASSERT_TRUE(heap.check_invariants());
    }
  }
  for (auto& e : entries) heap.cancel(&e);
  EXPECT_EQ(heap.size(), 0u);
}

TEST(TimerTest, test_timer_fire_may_destroy_its_entry) {
  // The heap stops touching an entry when it calls fire: the callback may free
  // it (ASan would catch a later touch).
  struct Owned {
    TimerEntry entry;
    int* fired;
  };
  int fired = 0;
  TimerHeap heap;
  for (int i = 0; i < 100; ++i) {
    auto* o = new Owned{{}, &fired};
    o->entry.deadline = at(i % 10);
    o->entry.user = o;
    o->entry.fire = [](TimerEntry* e) {
      auto* self = static_cast<Owned*>(e->user);
      ++*self->fired;
      delete self;
    };
    heap.insert(&o->entry);
  }
  EXPECT_EQ(heap.fire_expired(at(100)), 100u);
  EXPECT_EQ(fired, 100);
}

TEST(TimerTest, test_timer_cancel_from_fire_callback_does_not_deadlock) {
  // Outside the contract ("fire must not touch this heap") but tolerated:
  // the firing thread already holds the lock, so cancel proceeds.
  struct Ctx {
    TimerHeap* heap;
    TimerEntry* other;
    bool self_cancel = true;
    bool other_cancel = false;
  };
  TimerHeap heap;
  TimerEntry first, second;
  Ctx ctx{&heap, &second};
  first.deadline = at(1);
  first.user = &ctx;
  first.fire = [](TimerEntry* e) {
    auto* c = static_cast<Ctx*>(e->user);
    c->self_cancel = c->heap->cancel(e);          // already popped: false
    c->other_cancel = c->heap->cancel(c->other);  // still pending: true
  };
  second.deadline = at(2);
  second.fire = [](TimerEntry*) { FAIL() << "a cancelled timer fired"; };
  heap.insert(&first);
  heap.insert(&second);
  EXPECT_EQ(heap.fire_expired(at(10)), 1u);
  EXPECT_FALSE(ctx.self_cancel);
  EXPECT_TRUE(ctx.other_cancel);
  EXPECT_EQ(heap.size(), 0u);
  EXPECT_TRUE(heap.check_invariants());
}

// Probe: what the racing fire callback did, recorded with atomics, plus one
// plain field so TSan checks that cancel() == false orders after fire.
struct Probe {
  std::atomic<int> started{0};
  std::atomic<int> finished{0};
  int plain_written_by_fire = 0;
};

// Spins for about `n` short steps; the racing sides use it as random jitter.
void spin_for(unsigned n) {
  std::atomic<unsigned> local{0};
  for (unsigned i = 0; i < n; ++i) local.fetch_add(1, std::memory_order_relaxed);
}

void probe_fire(TimerEntry* e) {
  auto* p = static_cast<Probe*>(e->user);
  p->started.fetch_add(1, std::memory_order_relaxed);
  p->plain_written_by_fire += 1;
  spin_for(200);  // linger so that cancels often land while fire runs
  p->finished.fetch_add(1, std::memory_order_release);
}

// Pins the calling thread to one CPU (best effort): the cancel/fire race only
// happens when both sides really run at once, which a loaded machine that
// stacks both threads on one CPU would prevent.
void pin_to_cpu(unsigned cpu) {
#ifdef __linux__
  const unsigned n = std::thread::hardware_concurrency();
  if (n < 2) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu % n, &set);
  (void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
#else
  (void)cpu;
#endif
}

// ScopedPin pins the calling thread to `cpu` and restores its mask on exit.
class ScopedPin {
 public:
  explicit ScopedPin(unsigned cpu) {
#ifdef __linux__
    saved_ok_ = pthread_getaffinity_np(pthread_self(), sizeof(saved_), &saved_) == 0;
#endif
    pin_to_cpu(cpu);
  }
  ~ScopedPin() {
#ifdef __linux__
    if (saved_ok_) (void)pthread_setaffinity_np(pthread_self(), sizeof(saved_), &saved_);
#endif
  }
  ScopedPin(const ScopedPin&) = delete;
  ScopedPin& operator=(const ScopedPin&) = delete;

 private:
#ifdef __linux__
  cpu_set_t saved_{};
  bool saved_ok_ = false;
#endif
};

// Waits until `flag` reaches `value` (acquire): a two-party handshake that
// spins first, so that both sides start the race at nearly the same time,
// then yields, so that an oversubscribed machine still makes progress.
void wait_for(const std::atomic<int>& flag, int value) {
  for (int spins = 0; flag.load(std::memory_order_acquire) != value; ++spins) {
    if (spins > 10'000) std::this_thread::yield();
  }
}

TEST(TimerTest, test_timer_cancel_concurrent_with_fire_expired) {
  constexpr int kIterations = 100'000;
  TimerHeap heap;
  TimerEntry background;  // keeps the heap non-trivial while racing
  background.deadline = Clock::time_point::max();
  background.fire = [](TimerEntry*) {};
  heap.insert(&background);

  Probe probe;
  TimerEntry entry;
  entry.fire = &probe_fire;
  entry.user = &probe;
  std::atomic<int> ready{0};  // the canceller is spinning, waiting for iteration i
  std::atomic<int> go{0};     // iteration i may start: the entry is inserted
  std::atomic<int> done{0};   // the canceller finished iteration i
  // Written by the canceller before `done`, read by the main thread after it.
  bool cancel_result = false;
  bool saw_fire_running = false;
  int finished_when_cancel_returned = 0;
  int plain_seen_by_canceller = 0;
  // Written by the main thread before `go`, read by the canceller after it.
  unsigned canceller_delay = 0;

  std::thread canceller([&] {
    pin_to_cpu(1);
    for (int i = 1; i <= kIterations; ++i) {
      ready.store(i, std::memory_order_relaxed);
      wait_for(go, i);
      spin_for(canceller_delay);
      saw_fire_running = probe.started.load(std::memory_order_relaxed) == 1 &&
                         probe.finished.load(std::memory_order_relaxed) == 0;
      cancel_result = heap.cancel(&entry);
      finished_when_cancel_returned = probe.finished.load(std::memory_order_acquire);
      if (!cancel_result) plain_seen_by_canceller = probe.plain_written_by_fire;
      done.store(i, std::memory_order_release);
    }
  });

  int cancelled = 0, fired = 0, cancel_waited_for_fire = 0, violations = 0;
  // Who reaches the entry first depends on the machine and its load. A
  // feedback loop keeps the race balanced: each side gets a random delay plus
  // `bias` on one side, which moves toward the side that keeps winning, so
  // iterations cluster around the crossover where cancel meets a running fire.
  std::minstd_rand rng(2);
  const ScopedPin pin(0);
  int bias = 0;  // > 0: the canceller waits longer; < 0: the firer does
  constexpr int kMaxBias = 4096;
  for (int i = 1; i <= kIterations; ++i) {
    probe.started.store(0, std::memory_order_relaxed);
    probe.finished.store(0, std::memory_order_relaxed);
    probe.plain_written_by_fire = 0;
    entry.deadline = at(i);
    heap.insert(&entry);
    canceller_delay = static_cast<unsigned>(std::max(bias, 0)) + rng() % 64;
    wait_for(ready, i);  // both threads are on a CPU when the race starts
    go.store(i, std::memory_order_release);
    spin_for(static_cast<unsigned>(std::max(-bias, 0)) + rng() % 64);
    const std::size_t n = heap.fire_expired(at(i));
    wait_for(done, i);
    bias = std::clamp(bias + (cancel_result ? 8 : -8), -kMaxBias, kMaxBias);
    // Checked without ASSERT: returning early would leave the canceller waiting.
    const char* problem = nullptr;
    if (cancel_result) {
      ++cancelled;
      if (n != 0 || probe.started.load() != 0) problem = "a cancelled timer fired";
    } else {
      ++fired;
      cancel_waited_for_fire += saw_fire_running ? 1 : 0;
      if (n != 1 || probe.finished.load() != 1) {
        problem = "cancel returned false but the timer did not fire exactly once";
      } else if (finished_when_cancel_returned != 1) {
        problem = "cancel returned false before fire returned";
      } else if (plain_seen_by_canceller != 1) {
        problem = "the canceller did not see fire's write";
      }
    }
    if (heap.contains(&entry)) problem = "the entry stayed in the heap";
    if (problem != nullptr && ++violations <= 5) ADD_FAILURE() << problem << ", iteration " << i;
  }
  canceller.join();
  EXPECT_EQ(violations, 0);
  EXPECT_EQ(cancelled + fired, kIterations);
  EXPECT_EQ(heap.size(), 1u);
  EXPECT_TRUE(heap.cancel(&background));
  ::testing::Test::RecordProperty("cancelled", cancelled);
  ::testing::Test::RecordProperty("fired", fired);
  ::testing::Test::RecordProperty("cancel_during_fire", cancel_waited_for_fire);
}

TEST(TimerTest, test_timer_next_deadline_and_size_are_readable_without_the_lock) {
  // One thread inserts/cancels/fires while another polls next_deadline() and
  // size(): no data race (TSan), and every value seen is one that existed.
  TimerHeap heap;
  Recorder rec;
  auto entries = make_entries(256, rec);
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> reads{0};
  std::latch start(2);
  std::thread reader([&] {
    start.arrive_and_wait();
    while (!stop.load(std::memory_order_relaxed)) {
      if (auto d = heap.next_deadline()) {
        EXPECT_GE(*d, at(0));
      }
      EXPECT_LE(heap.size(), entries.size());
      reads.fetch_add(1, std::memory_order_relaxed);
    }
  });
  start.arrive_and_wait();
  std::mt19937 rng(5);
  // At least 20k changes, and go on until the reader has overlapped with them.
  for (int round = 0; round < 20'000 || reads.load(std::memory_order_relaxed) < 10'000; ++round) {
    TimerEntry& e = entries[rng() % entries.size()];
    if (!heap.cancel(&e)) {
      e.deadline = at(round + static_cast<std::int64_t>(rng() % 1000));
      heap.insert(&e);
    }
    if (round % 64 == 0) heap.fire_expired(at(round));
  }
  stop.store(true, std::memory_order_relaxed);
  reader.join();
  for (auto& e : entries) heap.cancel(&e);
  EXPECT_EQ(heap.size(), 0u);
}

// Inserts into a heap from one of its own fire callbacks (forbidden).
void insert_from_fire_callback() {
  struct Ctx {
    TimerHeap* heap;
    TimerEntry* other;
  };
  TimerHeap heap;
  TimerEntry a, b;
  Ctx ctx{&heap, &b};
  a.deadline = at(1);
  a.user = &ctx;
  a.fire = [](TimerEntry* e) {
    auto* c = static_cast<Ctx*>(e->user);
    c->heap->insert(c->other);
  };
  b.deadline = at(2);
  b.fire = [](TimerEntry*) {};
  heap.insert(&a);
  heap.fire_expired(at(10));
}

TEST(TimerDeathTest, test_timer_insert_from_fire_callback_aborts) {
  // It would loop or deadlock; it aborts with a message instead.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(insert_from_fire_callback(), "from a fire callback of the same heap");
}

}  // namespace
}  // namespace weft::detail
