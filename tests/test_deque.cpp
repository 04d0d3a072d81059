// Tests for the Chase-Lev work-stealing deque (src/scheduler/chase_lev_deque.hpp).
#include "scheduler/chase_lev_deque.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <latch>
#include <memory>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

namespace weft::detail {
namespace {

// Item: a task stand-in. `payload` is a plain field written by the owner before
// push and read by whoever takes the item, so TSan checks the deque's
// happens-before edge, not just its atomics.
struct Item {
  std::uint64_t id = 0;
  std::uint64_t payload = 0;
};

constexpr std::uint64_t payload_of(std::uint64_t id) { return id * 0x9E3779B97F4A7C15ull + 1; }

std::vector<Item> make_items(std::size_t n) {
  std::vector<Item> items(n);
  for (std::size_t i = 0; i < n; ++i) items[i].id = i;
  return items;
}

TEST(DequeTest, test_deque_empty_behaviour) {
  ChaseLevDeque<Item> dq;
  EXPECT_TRUE(dq.empty_approx());
  EXPECT_EQ(dq.size_approx(), 0u);
  EXPECT_EQ(dq.pop(), nullptr);
  EXPECT_EQ(dq.steal(), nullptr);
  // Popping an empty deque repeatedly must restore bottom each time.
  for (int i = 0; i < 10; ++i) EXPECT_EQ(dq.pop(), nullptr);
  EXPECT_EQ(dq.size_approx(), 0u);

  Item a{1}, b{2};
  dq.push(&a);
  EXPECT_FALSE(dq.empty_approx());
  EXPECT_EQ(dq.size_approx(), 1u);
  EXPECT_EQ(dq.pop(), &a);
  EXPECT_EQ(dq.pop(), nullptr);
  EXPECT_EQ(dq.steal(), nullptr);
  dq.push(&b);
  EXPECT_EQ(dq.steal(), &b);
  EXPECT_EQ(dq.steal(), nullptr);
  EXPECT_EQ(dq.pop(), nullptr);
  EXPECT_TRUE(dq.empty_approx());
}

TEST(DequeTest, test_deque_rejects_bad_capacity) {
  EXPECT_THROW(ChaseLevDeque<Item>(0), std::invalid_argument);
  EXPECT_THROW(ChaseLevDeque<Item>(3), std::invalid_argument);
  EXPECT_THROW(ChaseLevDeque<Item>(1000), std::invalid_argument);
  EXPECT_NO_THROW(ChaseLevDeque<Item>(1));
  EXPECT_NO_THROW(ChaseLevDeque<Item>(1024));
}

TEST(DequeTest, test_deque_pop_is_lifo_steal_is_fifo) {
  auto items = make_items(100);
  ChaseLevDeque<Item> dq(128);
  for (auto& it : items) dq.push(&it);
  EXPECT_EQ(dq.size_approx(), 100u);
  // Steal the oldest ten in push order, pop the newest ten in reverse.
  for (std::uint64_t i = 0; i < 10; ++i) EXPECT_EQ(dq.steal()->id, i);
  for (std::uint64_t i = 0; i < 10; ++i) EXPECT_EQ(dq.pop()->id, 99 - i);
  EXPECT_EQ(dq.size_approx(), 80u);
  // The two ends meet in the middle.
  for (std::uint64_t i = 10; i < 50; ++i) EXPECT_EQ(dq.steal()->id, i);
  for (std::uint64_t i = 89; i >= 50; --i) EXPECT_EQ(dq.pop()->id, i);
  EXPECT_EQ(dq.pop(), nullptr);
  EXPECT_EQ(dq.steal(), nullptr);
}

TEST(DequeTest, test_deque_grows_across_many_pushes_with_interleaved_steals) {
  constexpr std::size_t kN = 100'000;
  auto items = make_items(kN);
  ChaseLevDeque<Item> dq(2);
  std::uint64_t next_stolen = 0;
  for (std::size_t i = 0; i < kN; ++i) {
    dq.push(&items[i]);
    if (i % 3 == 0) {  // steals come out in push order, across every growth
      Item* s = dq.steal();
      ASSERT_NE(s, nullptr);
      ASSERT_EQ(s->id, next_stolen++);
    }
  }
  EXPECT_GE(dq.capacity(), kN - next_stolen);
  EXPECT_EQ(dq.size_approx(), kN - next_stolen);
  // The rest pops newest first, down to the oldest not stolen.
  for (std::uint64_t i = kN; i-- > next_stolen;) {
    Item* p = dq.pop();
    ASSERT_NE(p, nullptr);
    ASSERT_EQ(p->id, i);
  }
  EXPECT_EQ(dq.pop(), nullptr);
  EXPECT_EQ(dq.steal(), nullptr);
}

TEST(DequeTest, test_deque_wraps_without_growing) {
  // Push/steal far beyond the capacity while never holding more than 4 items:
  // the ring is reused lap after lap and never grows.
  auto items = make_items(4);
  ChaseLevDeque<Item> dq(4);
  for (int lap = 0; lap < 10'000; ++lap) {
    for (auto& it : items) dq.push(&it);
    for (auto& it : items) ASSERT_EQ(dq.steal(), &it);
  }
  EXPECT_EQ(dq.capacity(), 4u);
  EXPECT_TRUE(dq.empty_approx());
}

TEST(DequeTest, test_deque_steal_half_takes_half_rounded_up_oldest_first) {
  auto items = make_items(100);
  ChaseLevDeque<Item> victim;
  ChaseLevDeque<Item> thief;
  for (std::size_t i = 0; i < 9; ++i) victim.push(&items[i]);
  // 9 items: 5 taken (the oldest, 0, returned; 1..4 moved), 4 left.
  ASSERT_EQ(victim.steal_half(thief, 32), &items[0]);
  EXPECT_EQ(thief.size_approx(), 4u);
  EXPECT_EQ(victim.size_approx(), 4u);
  for (std::size_t i = 4; i >= 1; --i) EXPECT_EQ(thief.pop(), &items[i]);  // LIFO: newest first
  EXPECT_EQ(thief.pop(), nullptr);
  for (std::size_t i = 5; i < 9; ++i) EXPECT_EQ(victim.steal(), &items[i]);
  // One item: it is returned, nothing moved.
  victim.push(&items[0]);
  ASSERT_EQ(victim.steal_half(thief, 32), &items[0]);
  EXPECT_TRUE(thief.empty_approx());
  EXPECT_TRUE(victim.empty_approx());
  EXPECT_EQ(victim.steal_half(thief, 32), nullptr);
  // The bound: 100 items, at most 8 per visit.
  for (auto& it : items) victim.push(&it);
  ASSERT_EQ(victim.steal_half(thief, 8), &items[0]);
  EXPECT_EQ(thief.size_approx(), 7u);
  EXPECT_EQ(victim.size_approx(), 92u);
  EXPECT_EQ(victim.pop(), &items[99]);
}

// Runs an owner and `thieves` stealing threads over n items and checks that
// every item is taken exactly once, with the payload the owner wrote. With
// `batch`, each thief steals with steal_half() into a deque of its own and
// then drains that deque.
void run_stress(std::size_t n, std::size_t initial_capacity, int thieves, bool batch = false) {
  auto items = make_items(n);
  std::vector<std::atomic<std::uint8_t>> taken(n);
  std::atomic<bool> owner_done{false};
  std::atomic<std::uint64_t> stolen_total{0};
  std::atomic<int> bad_payloads{0};
  ChaseLevDeque<Item> dq(initial_capacity);
  std::latch start(thieves + 1);

  auto take = [&](Item* it) {
    if (it->payload != payload_of(it->id)) bad_payloads.fetch_add(1, std::memory_order_relaxed);
    taken[it->id].fetch_add(1, std::memory_order_relaxed);
  };

  std::vector<std::thread> pool;
  for (int t = 0; t < thieves; ++t) {
    pool.emplace_back([&] {
      start.arrive_and_wait();
      std::uint64_t mine = 0;
      ChaseLevDeque<Item> own(2);  // grows when a batch lands
      for (;;) {
        // Acquire: the owner's release store of owner_done follows its last
        // pop; once we see it the deque is empty for good.
        const bool done = owner_done.load(std::memory_order_acquire);
        if (Item* it = batch ? dq.steal_half(own, 32) : dq.steal()) {
          take(it);
          ++mine;
          while (Item* more = own.pop()) {
            take(more);
            ++mine;
          }
        } else if (done) {
          break;
        }
      }
      stolen_total.fetch_add(mine, std::memory_order_relaxed);
    });
  }

  start.arrive_and_wait();
  std::uint64_t popped = 0;
  std::uint64_t rng = 0x243F6A8885A308D3ull;
  std::size_t next = 0;
  while (next < n) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;  // xorshift64
    // Push a burst of 1..8, then pop 0..3: the deque breathes and grows.
    const std::size_t burst = 1 + (rng & 7);
    for (std::size_t k = 0; k < burst && next < n; ++k, ++next) {
      items[next].payload = payload_of(next);
      dq.push(&items[next]);
    }
    for (std::size_t k = 0; k < ((rng >> 3) & 3); ++k) {
      if (Item* it = dq.pop()) {
        take(it);
        ++popped;
      }
    }
  }
  while (Item* it = dq.pop()) {  // nullptr only when empty
    take(it);
    ++popped;
  }
  owner_done.store(true, std::memory_order_release);
  for (auto& th : pool) th.join();

  EXPECT_EQ(popped + stolen_total.load(), n);
  EXPECT_EQ(bad_payloads.load(), 0);
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (taken[i].load(std::memory_order_relaxed) != 1 && wrong++ < 5) {
      ADD_FAILURE() << "item " << i << " taken " << int(taken[i].load()) << " times";
    }
  }
  EXPECT_EQ(wrong, 0u);
  ::testing::Test::RecordProperty("stolen", static_cast<int>(stolen_total.load()));
}

TEST(DequeTest, test_deque_concurrent_owner_and_three_thieves_take_each_item_once) {
  run_stress(1'000'000, 256, 3);
}

TEST(DequeTest, test_deque_concurrent_growth_while_stealing) {
  // Capacity 2: growth happens constantly while thieves read old buffers.
  run_stress(200'000, 2, 3);
}

TEST(DequeTest, test_deque_concurrent_owner_and_three_batch_thieves_take_each_item_once) {
  run_stress(1'000'000, 256, 3, /*batch=*/true);
}

TEST(DequeTest, test_deque_batch_steal_while_growing) { run_stress(200'000, 2, 3, /*batch=*/true); }

// The race a batch must survive: the thief has counted n items and steals
// them one by one while the owner pops the same few from the bottom. Each
// round the owner pushes 4 and pops until empty; the thief, never pausing,
// batch-steals into its own deque. Every item is taken exactly once.
TEST(DequeTest, test_deque_batch_steal_races_owner_pops_of_the_last_items) {
  constexpr std::size_t kRounds = 100'000;
  constexpr std::size_t kPer = 4;
  auto items = make_items(kRounds * kPer);
  std::vector<std::atomic<std::uint8_t>> taken(items.size());
  ChaseLevDeque<Item> dq(4);
  std::atomic<bool> owner_done{false};
  std::atomic<std::uint64_t> stolen{0};
  std::latch start(2);
  std::thread thief([&] {
    ChaseLevDeque<Item> own(4);
    start.arrive_and_wait();
    for (;;) {
      const bool done = owner_done.load(std::memory_order_acquire);
      Item* it = dq.steal_half(own, 32);
      if (it == nullptr && done) break;
      for (; it != nullptr; it = own.pop()) {
        EXPECT_EQ(it->payload, payload_of(it->id));
        taken[it->id].fetch_add(1, std::memory_order_relaxed);
        stolen.fetch_add(1, std::memory_order_relaxed);
      }
    }
  });
  start.arrive_and_wait();
  for (std::size_t r = 0; r < kRounds; ++r) {
    for (std::size_t k = 0; k < kPer; ++k) {
      Item& it = items[r * kPer + k];
      it.payload = payload_of(it.id);
      dq.push(&it);
    }
    while (Item* it = dq.pop()) taken[it->id].fetch_add(1, std::memory_order_relaxed);
  }
  owner_done.store(true, std::memory_order_release);
  thief.join();
  for (std::size_t i = 0; i < items.size(); ++i) ASSERT_EQ(taken[i].load(), 1) << "item " << i;
  // The race happened: the thief took some (not asserted to be many: the
  // machine may not run both threads at once).
  ::testing::Test::RecordProperty("stolen", static_cast<int>(stolen.load()));
}

TEST(DequeTest, test_deque_last_item_race_between_pop_and_steal) {
  // The owner pushes one item and immediately pops it while a thief steals
  // without pause: pop and steal race for the single item through the CAS on
  // top. Exactly one of them must get it.
  constexpr std::size_t kN = 200'000;
  auto items = make_items(kN);
  std::vector<std::atomic<std::uint8_t>> taken(kN);
  ChaseLevDeque<Item> dq(2);
  std::atomic<bool> owner_done{false};
  std::latch start(2);
  std::thread thief([&] {
    start.arrive_and_wait();
    for (;;) {
      const bool done = owner_done.load(std::memory_order_acquire);
      if (Item* it = dq.steal()) {
        EXPECT_EQ(it->payload, payload_of(it->id));
        taken[it->id].fetch_add(1, std::memory_order_relaxed);
      } else if (done) {
        break;
      }
    }
  });
  start.arrive_and_wait();
  for (std::size_t i = 0; i < kN; ++i) {
    items[i].payload = payload_of(i);
    dq.push(&items[i]);
    if (Item* it = dq.pop()) taken[it->id].fetch_add(1, std::memory_order_relaxed);
  }
  owner_done.store(true, std::memory_order_release);
  thief.join();
  for (std::size_t i = 0; i < kN; ++i) ASSERT_EQ(taken[i].load(), 1) << "item " << i;
}

// trim() while thieves steal: the owner pushes bursts of 20,000 (the buffer
// grows to 32,768 slots in the first), trims every 1,000 pushes (the
// replaced buffers' pages go while thieves may still read them) and again
// once it has popped the deque empty (the current buffer's pages go while a
// thief may hold an index from before). Every item is taken exactly once.
TEST(DequeTest, test_deque_trim_while_stealing_takes_each_item_once) {
  constexpr std::size_t kBurst = 20'000, kRounds = 20, kN = kBurst * kRounds;
  auto items = make_items(kN);
  std::vector<std::atomic<std::uint8_t>> taken(kN);
  ChaseLevDeque<Item> dq(2);
  std::atomic<bool> owner_done{false};
  std::atomic<int> bad_payloads{0};
  auto take = [&](Item* it) {
    if (it->payload != payload_of(it->id)) bad_payloads.fetch_add(1, std::memory_order_relaxed);
    taken[it->id].fetch_add(1, std::memory_order_relaxed);
  };
  std::latch start(3);
  std::vector<std::thread> thieves;
  for (int t = 0; t < 2; ++t) {
    thieves.emplace_back([&] {
      start.arrive_and_wait();
      for (;;) {
        const bool done = owner_done.load(std::memory_order_acquire);
        if (Item* it = dq.steal()) {
          take(it);
        } else if (done) {
          break;
        }
      }
    });
  }
  start.arrive_and_wait();
  std::size_t given = 0;
  for (std::size_t round = 0; round < kRounds; ++round) {
    for (std::size_t i = round * kBurst; i < (round + 1) * kBurst; ++i) {
      items[i].payload = payload_of(i);
      dq.push(&items[i]);
      if (i % 1000 == 999) given += dq.trim();
    }
    while (Item* it = dq.pop()) take(it);
    given += dq.trim();
  }
  owner_done.store(true, std::memory_order_release);
  for (auto& th : thieves) th.join();
  EXPECT_GT(given, 0u) << "trim() gave nothing back: the test did not test it";
  EXPECT_EQ(bad_payloads.load(), 0);
  for (std::size_t i = 0; i < kN; ++i) ASSERT_EQ(taken[i].load(), 1) << "item " << i;
}

TEST(DequeTest, test_deque_trim_gives_back_replaced_and_large_empty_buffers_only) {
  auto items = make_items(20'000);
  ChaseLevDeque<Item> dq(2);
  EXPECT_EQ(dq.trim(), 0u) << "nothing to give back yet";
  for (auto& it : items) dq.push(&it);
  ASSERT_EQ(dq.capacity(), 32768u);
  ASSERT_EQ(dq.retired(), 14u);  // 2, 4, ..., 16384
  // Non-empty: only the replaced buffers (the ones with a whole page).
  const std::size_t replaced = dq.trim();
  EXPECT_GE(replaced, 200u * 1024) << "2 + 4 + ... + 16384 slots are 256 KiB less 16 bytes";
  EXPECT_LT(replaced, 256u * 1024) << "partial pages stay";
  EXPECT_EQ(dq.trim(), 0u) << "each replaced buffer is given back once";
  // The deque still holds every item, newest first.
  for (std::size_t i = items.size(); i-- > 10'000;) ASSERT_EQ(dq.pop(), &items[i]);
  EXPECT_EQ(dq.trim(), 0u) << "the current buffer keeps its pages while it holds items";
  for (std::size_t i = 10'000; i-- > 0;) ASSERT_EQ(dq.pop(), &items[i]);
  // Empty, and 256 KiB: its whole pages go, its capacity stays; not twice
  // while nothing moved.
  EXPECT_GE(dq.trim(), 248u * 1024);
  EXPECT_EQ(dq.trim(), 0u);
  EXPECT_EQ(dq.capacity(), 32768u);
  // Pushes fault the pages back in: the items come back right.
  for (auto& it : items) dq.push(&it);
  for (std::size_t i = 0; i < 5; ++i) ASSERT_EQ(dq.steal(), &items[i]);
  for (std::size_t i = items.size(); i-- > 5;) ASSERT_EQ(dq.pop(), &items[i]);
  EXPECT_EQ(dq.pop(), nullptr);
  EXPECT_GE(dq.trim(), 248u * 1024) << "the deque moved: given back again";
  // A small empty buffer keeps its pages.
  ChaseLevDeque<Item> small(1024);
  small.push(&items[0]);
  ASSERT_EQ(small.pop(), &items[0]);
  EXPECT_EQ(small.trim(), 0u);
}

// The stale thief, forced: a thief loads the buffer, then (StaleThiefHooks)
// the owner fills it up, grows it and trims the replaced buffer before the
// thief reads its slot. The slot reads as null: steal() must leave the item
// in the deque (not take an index and return nothing), and the next steal
// returns it from the new buffer.
struct StaleThiefHooks {
  static inline void (*at_steal)() = nullptr;
  static void steal_loaded_buffer() noexcept {
    if (auto f = std::exchange(at_steal, nullptr)) f();
  }
};

TEST(DequeTest, test_deque_a_thief_on_a_trimmed_replaced_buffer_leaves_the_item) {
  static auto items = make_items(8193);
  static ChaseLevDeque<Item, StaleThiefHooks>* dq = nullptr;
  ChaseLevDeque<Item, StaleThiefHooks> deque(4096);
  dq = &deque;
  for (std::size_t i = 0; i < 4096; ++i) dq->push(&items[i]);
  // Top to 2048: the slot the thief reads is in a whole page of the buffer.
  for (std::size_t i = 0; i < 2048; ++i) ASSERT_EQ(dq->steal(), &items[i]);
  for (std::size_t i = 4096; i < 6144; ++i) dq->push(&items[i]);  // full again
  static std::size_t given = 0;
  StaleThiefHooks::at_steal = [] {
    dq->push(&items[6144]);  // grows: the thief holds the replaced buffer
    ASSERT_EQ(dq->retired(), 1u);
    given = dq->trim();
  };
  EXPECT_EQ(dq->steal(), nullptr) << "read a trimmed slot";
  EXPECT_GE(given, 16u * 1024) << "the replaced 32 KiB buffer's pages";
  EXPECT_EQ(dq->size_approx(), 4097u) << "the stale thief took nothing";
  for (std::size_t i = 2048; i <= 6144; ++i) ASSERT_EQ(dq->steal(), &items[i]) << i;
  EXPECT_EQ(dq->steal(), nullptr);
  dq = nullptr;
}

}  // namespace
}  // namespace weft::detail
