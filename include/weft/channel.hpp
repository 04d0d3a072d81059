// Channel<T>: a multi-producer multi-consumer FIFO queue for fibers and
// plain threads, bounded (send waits while full) or unbounded.
//
// Memory ordering: everything a sender did before send()/try_send() accepted
// an item happens-before everything the receiver of that item does after
// receive()/try_receive() returns it. close() happens-before every receive()
// that returns std::nullopt and every send() that throws ChannelClosed
// because of it.
//
// Ordering and fairness: items are received in the order they were accepted.
// Waiting senders and waiting receivers are served first come, first served;
// a newcomer never overtakes a waiter.
//
// Interruption: send() and receive() are interruptible yield points (they
// throw weft::Interrupted when an interrupt is pending on entry or arrives
// while they wait). Nothing is lost: an interrupted receive() consumed no
// item, and an interrupted send() enqueued nothing (its item is destroyed
// with the call). Once send() returns normally the item is in the channel,
// and once receive() returns an item it is the caller's, even if an
// interrupt arrived meanwhile (it is delivered at the next yield point). The
// try_ functions, close(), closed() and size() never wait and are not yield
// points. From a plain thread, send() and receive() block the thread.
//
// Hand-off: whoever ends a wait transfers the item under the channel's lock
// before resuming the waiter: a sender hands its item straight to the oldest
// waiting receiver, and a receiver that frees a slot moves the oldest waiting
// sender's item into the buffer. A waiter never grabs anything after waking.
//
// Timed waits: send_until(value, deadline) / send_for(value, d) return false
// when the deadline passed before the item was accepted; the item was then
// NOT enqueued and is left untouched with the caller (send_until takes it by
// reference, unlike send()), so a retry or another route can still use it.
// receive_until(deadline) / receive_for(d) return a ReceiveResult<T>: a
// std::optional<T> holding the item, or empty with status() saying why
// (ReceiveStatus::closed: closed and drained, no item will ever come;
// ReceiveStatus::timed_out: the deadline passed, nothing was consumed) — the
// three outcomes of Go's select over a channel and a timer, or Tokio's
// timeout(rx.recv()). Both are interruptible yield points exactly like their
// untimed forms; a deadline already passed does not park (the call still
// succeeds when it can without waiting). A timed-out waiter never takes a
// hand-off meant for another: a waker that meets it skips to the next one.
//
// Closing: close() wakes every waiter. Items already buffered stay
// receivable; receive() returns std::nullopt once the channel is closed and
// drained; send() throws ChannelClosed (a std::logic_error, like Go's panic
// on a send to a closed channel), try_send() returns false: a refused item is
// left with the caller, unlike a send() that throws.
//
// Lifetime: a Channel may be destroyed as soon as the calls of its users
// have returned, even if the send() that handed the last item over has not
// returned yet (the destructor waits for it to release the channel's lock).
// Destroying a Channel while fibers wait on it wakes them with
// std::logic_error; buffered items are destroyed with it.
//
// Misuse: send() on a closed channel throws ChannelClosed (above); a
// capacity too large for any allocation throws std::invalid_argument
// ("weft::Channel: capacity N is too large ...") instead of bad_alloc.
//
// Requirements: T is nothrow move constructible (items move under a spin
// lock, and a hand-off that has begun cannot fail half-way).
#pragma once

#include <weft/deadline.hpp>
#include <weft/detail/assert.hpp>
#include <weft/detail/spin_lock.hpp>
#include <weft/detail/sync_queue.hpp>
#include <weft/this_fiber.hpp>

#include <fmt/format.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <iterator>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <weft/source_location.hpp>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace weft {

// ChannelClosed is thrown by send() on a closed channel.
class ChannelClosed : public std::logic_error {
 public:
  // ChannelClosed() says "weft::Channel: send on a closed channel".
  ChannelClosed() : std::logic_error("weft::Channel: send on a closed channel") {}
};

// ReceiveStatus says how a timed receive (Channel::receive_until) ended.
enum class ReceiveStatus : std::uint8_t {
  item,       // an item was received: the result holds it
  closed,     // the channel is closed and drained: no item will ever come
  timed_out,  // the deadline passed first: nothing was consumed
};

// ReceiveResult<T> is what Channel::receive_until returns: a std::optional<T>
// (use it as one: `if (auto r = ch.receive_for(1s)) use(*r);`) that also
// says why it is empty: closed() or timed_out(). It converts to a plain
// std::optional<T> by copy-initialisation (`std::optional<T> v = r;`).
template <class T>
class ReceiveResult : public std::optional<T> {
 public:
  // ReceiveResult(item) holds a received item.
  explicit ReceiveResult(T&& item) noexcept
      : std::optional<T>(std::in_place, std::move(item)), status_(ReceiveStatus::item) {}
  // ReceiveResult(status) holds no item; status is closed or timed_out.
  explicit ReceiveResult(ReceiveStatus status) noexcept : status_(status) {}

  // status() is item, closed or timed_out.
  ReceiveStatus status() const noexcept { return status_; }
  // closed() is true when the channel was closed and drained (no item).
  bool closed() const noexcept { return status_ == ReceiveStatus::closed; }
  // timed_out() is true when the deadline passed first (no item).
  bool timed_out() const noexcept { return status_ == ReceiveStatus::timed_out; }

 private:
  ReceiveStatus status_;
};

namespace detail {

// kChannelDestroyed is what waiters of a destroyed Channel throw.
inline constexpr const char* kChannelDestroyed = "weft::Channel destroyed while fibers wait on it";

// ChannelBuffer holds a channel's items: a ring allocated up front when
// bounded (so admitting a waiting sender never allocates or throws), a deque
// when unbounded.
template <class T>
class ChannelBuffer {
 public:
  // ChannelBuffer() is empty; capacity 0 means unbounded. A capacity whose
  // ring no allocation could hold throws std::invalid_argument.
  explicit ChannelBuffer(std::size_t capacity) : capacity_(capacity) {
    constexpr std::size_t kMaxCapacity =
        static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max()) /
        sizeof(std::optional<T>);
    if (capacity_ > kMaxCapacity)
      throw std::invalid_argument(
          fmt::format("weft::Channel: capacity {} is too large (at most {}; 0 means unbounded)",
                      capacity_, kMaxCapacity));
    if (capacity_ != 0) ring_ = std::make_unique<std::optional<T>[]>(capacity_);
  }
  // size() is how many items are buffered.
  std::size_t size() const noexcept { return capacity_ != 0 ? size_ : deque_.size(); }
  // empty() is true with no item buffered.
  bool empty() const noexcept { return size() == 0; }
  // full() is true when a bounded buffer holds `capacity` items.
  bool full() const noexcept { return capacity_ != 0 && size_ == capacity_; }
  // push() appends (not full); never throws when bounded.
  void push(T&& item) {
    if (capacity_ == 0) {
      deque_.push_back(std::move(item));
      return;
    }
    ring_[(head_ + size_) % capacity_].emplace(std::move(item));
    ++size_;
  }
  // pop() removes and returns the oldest item (not empty).
  T pop() noexcept {
    if (capacity_ == 0) {
      T item(std::move(deque_.front()));
      deque_.pop_front();
      return item;
    }
    std::optional<T>& slot = ring_[head_];
    T item(std::move(*slot));
    slot.reset();
    head_ = (head_ + 1) % capacity_;
    --size_;
    return item;
  }

 private:
  std::size_t capacity_;
  std::unique_ptr<std::optional<T>[]> ring_;  // bounded
  std::size_t head_ = 0;                      // bounded: index of the oldest item
  std::size_t size_ = 0;                      // bounded: items in the ring
  std::deque<T> deque_;                       // unbounded
};

}  // namespace detail

// Channel<T> is an MPMC FIFO channel (see the top of this header).
template <class T>
class Channel {
  // Items move under the channel's spin lock, and a hand-off that started
  // (a waiter claimed) must finish: moving a T must not throw.
  static_assert(std::is_nothrow_move_constructible_v<T>,
                "weft::Channel<T> needs a nothrow move constructor (wrap T in a unique_ptr)");
  static_assert(std::is_nothrow_destructible_v<T>, "weft::Channel<T> needs a nothrow destructor");

 public:
  // Iterator is the input iterator of range-for (defined below).
  class Iterator;

  // Channel() makes a channel holding up to `capacity` items; 0 means
  // unbounded. A capacity too large to allocate throws std::invalid_argument.
  explicit Channel(std::size_t capacity) : capacity_(capacity), buffer_(capacity) {}
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;
  // ~Channel() wakes fibers still waiting with std::logic_error; buffered items are destroyed.
  ~Channel() = default;

  // send() appends `value`, waiting while the channel is full; throws
  // ChannelClosed once closed. A yield point.
  void send(T value, weft::source_location where = weft::source_location::current()) {
    (void)send_until_impl(value, Deadline::max(), where);
  }
  // send_until() appends `value`, waiting while the channel is full until
  // `deadline`; false when the deadline passed first, and then `value` was
  // not enqueued and is left untouched. Throws ChannelClosed once closed
  // (`value` untouched too). A yield point.
  [[nodiscard("false: not sent, the value is still yours")]] bool send_until(
      T&& value, Deadline deadline, weft::source_location where = weft::source_location::current()) {
    return send_until_impl(value, deadline, where);
  }
  // send_until() sends a copy of `value`; see send_until(T&&, Deadline).
  [[nodiscard("false: not sent")]] bool send_until(
      const T& value, Deadline deadline,
      weft::source_location where = weft::source_location::current()) {
    T copy(value);  // copied before the lock: a throwing copy must not strand a claimed waiter
    return send_until_impl(copy, deadline, where);
  }
  // send_for() is send_until(value, this_fiber::now() + d). A yield point.
  [[nodiscard("false: not sent, the value is still yours")]] bool send_for(
      T&& value, std::chrono::nanoseconds d,
      weft::source_location where = weft::source_location::current()) {
    return send_until_impl(value, detail::deadline_after(d), where);
  }
  // send_for() sends a copy of `value`; see send_for(T&&, nanoseconds).
  [[nodiscard("false: not sent")]] bool send_for(
      const T& value, std::chrono::nanoseconds d,
      weft::source_location where = weft::source_location::current()) {
    return send_until(value, detail::deadline_after(d), where);
  }
  // try_send() appends `value` if there is room and the channel is open;
  // false otherwise, and then `value` is left untouched. Never waits.
  [[nodiscard]] bool try_send(T&& value) {
    std::unique_lock lk(queue_.lock());
    if (closed_) return false;
    if (hand_to_receiver(lk, value)) return true;
    if (buffer_.full()) return false;
    buffer_.push(std::move(value));
    return true;
  }
  // try_send() sends a copy of `value`; see try_send(T&&).
  [[nodiscard]] bool try_send(const T& value) {
    T copy(value);  // copied before the lock: a throwing copy must not strand a claimed waiter
    return try_send(std::move(copy));
  }

  // receive() takes the oldest item, waiting while the channel is empty;
  // std::nullopt once the channel is closed and drained. A yield point.
  std::optional<T> receive(weft::source_location where = weft::source_location::current()) {
    ReceiveResult<T> r = receive_until(Deadline::max(), where);  // never timed_out
    return std::move(static_cast<std::optional<T>&>(r));
  }
  // receive_until() takes the oldest item, waiting while the channel is
  // empty until `deadline`: the item, or empty with closed() (closed and
  // drained) or timed_out() (the deadline passed; nothing consumed). A
  // yield point.
  [[nodiscard]] ReceiveResult<T> receive_until(
      Deadline deadline, weft::source_location where = weft::source_location::current()) {
    detail::enter_yield_point(where);
    std::unique_lock lk(queue_.lock());
    if (!buffer_.empty()) return ReceiveResult<T>(take(lk));
    if (closed_) return ReceiveResult<T>(ReceiveStatus::closed);
    ReceiveSlot slot;
    if (!queue_.park_until(lk, slot, {"Channel::receive", this, where}, detail::kChannelDestroyed,
                           deadline))
      return ReceiveResult<T>(ReceiveStatus::timed_out);
    if (!slot.item) return ReceiveResult<T>(ReceiveStatus::closed);  // woken by close()
    return ReceiveResult<T>(std::move(*slot.item));
  }
  // receive_for() is receive_until(this_fiber::now() + d). A yield point.
  [[nodiscard]] ReceiveResult<T> receive_for(
      std::chrono::nanoseconds d, weft::source_location where = weft::source_location::current()) {
    return receive_until(detail::deadline_after(d), where);
  }
  // try_receive() takes the oldest item if there is one. Never waits.
  [[nodiscard]] std::optional<T> try_receive() {
    std::unique_lock lk(queue_.lock());
    if (buffer_.empty()) return std::nullopt;
    return take(lk);
  }

  // close() refuses further sends and wakes every waiter; idempotent.
  void close() {
    std::unique_lock lk(queue_.lock());
    if (closed_) return;
    closed_ = true;
    queue_.wake_all(
        lk, [](detail::Waiter* w) { detail::SyncQueue::slot_of<SlotBase>(w).closed = true; });
  }
  // closed() is true once close() was called.
  bool closed() const {
    std::lock_guard lk(queue_.lock());
    return closed_;
  }
  // size() is how many items are buffered (not counting waiting senders).
  std::size_t size() const {
    std::lock_guard lk(queue_.lock());
    return buffer_.size();
  }
  // capacity() is the bound given at construction (0: unbounded).
  std::size_t capacity() const noexcept { return capacity_; }
  // waiters() is how many senders and receivers are waiting (diagnostics, tests).
  std::size_t waiters() const noexcept { return queue_.waiters(); }

  // begin() receives the first item; iterating receives until closed and drained.
  Iterator begin() { return Iterator(this); }
  // end() is the end of the items: the channel closed and drained.
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  // Waiters are all senders (the buffer is full) or all receivers (the
  // buffer is empty), never both: a sender only waits on a full buffer, a
  // receiver only on an empty one, and each side drains the other's waiters
  // before changing the buffer's state. Interrupted waiters still linked are
  // skipped by claim().
  struct SlotBase : detail::WaitSlot {
    bool sender = false;  // which side parked (checked by the waker)
    bool closed = false;  // woken by close(): nothing was handed over
  };
  struct SendSlot : SlotBase {
    SendSlot() { this->sender = true; }
    T* item = nullptr;  // the parked sender's item, on its stack
  };
  struct ReceiveSlot : SlotBase {
    std::optional<T> item;  // filled by the sender that woke us
  };

  // send_until_impl() is every send that may wait: `value` is moved from
  // only when it was accepted (true).
  bool send_until_impl(T& value, Deadline deadline, weft::source_location where) {
    detail::enter_yield_point(where);
    std::unique_lock lk(queue_.lock());
    if (closed_) {
      lk.unlock();
      throw ChannelClosed();
    }
    if (hand_to_receiver(lk, value)) return true;
    if (!buffer_.full()) {
      buffer_.push(std::move(value));  // unbounded: may throw bad_alloc, nothing enqueued
      return true;
    }
    SendSlot slot;
    slot.item = &value;
    if (!queue_.park_until(lk, slot, {"Channel::send", this, where}, detail::kChannelDestroyed,
                           deadline))
      return false;  // nobody took *slot.item
    if (slot.closed) throw ChannelClosed();
    return true;
  }

  // hand_to_receiver() gives `value` to the oldest waiting receiver (lock
  // held); true if there was one, and then the lock is released.
  // Not analysed: clang 14 cannot follow `lk`, a guard passed in.
  bool hand_to_receiver(std::unique_lock<detail::SpinLock>& lk,
                        T& value) noexcept WEFT_NO_THREAD_SAFETY_ANALYSIS {
    if (!buffer_.empty()) return false;  // receivers wait only on an empty buffer
    detail::Waiter* w = queue_.claim();
    if (w == nullptr) return false;
    auto& slot = detail::SyncQueue::slot_of<ReceiveSlot>(w);
    WEFT_ASSERT(!slot.sender, "weft::Channel: a sender waits on an empty channel");
    slot.item.emplace(std::move(value));
    lk.unlock();
    detail::SyncQueue::resume(w);
    return true;
  }

  // take() pops the oldest item (lock held, not empty) and, if that freed
  // the slot a sender waits for, moves the oldest waiting sender's item in.
  // Not analysed: clang 14 cannot follow `lk`, a guard passed in.
  T take(std::unique_lock<detail::SpinLock>& lk) noexcept
      WEFT_RELEASE(queue_.lock()) WEFT_NO_THREAD_SAFETY_ANALYSIS {
    const bool was_full = buffer_.full();
    T item(buffer_.pop());
    detail::Waiter* w = was_full ? queue_.claim() : nullptr;
    if (w != nullptr) {
      auto& slot = detail::SyncQueue::slot_of<SendSlot>(w);
      WEFT_ASSERT(slot.sender, "weft::Channel: a receiver waits on a full channel");
      buffer_.push(std::move(*slot.item));  // bounded: never throws
    }
    lk.unlock();
    if (w != nullptr) detail::SyncQueue::resume(w);
    return item;
  }

  std::size_t capacity_;
  detail::ChannelBuffer<T> buffer_ WEFT_GUARDED_BY(queue_.lock());
  bool closed_ WEFT_GUARDED_BY(queue_.lock()) = false;
  mutable detail::SyncQueue queue_;  // last: destroyed first, waking waiters
};

// Channel<T>::Iterator is an input iterator that receive()s on increment.
template <class T>
class Channel<T>::Iterator {
 public:
  using iterator_category = std::input_iterator_tag;  // single pass
  using iterator_concept = std::input_iterator_tag;   // single pass
  using value_type = T;                               // the items
  using difference_type = std::ptrdiff_t;             // required by the concepts

  // Iterator() is a past-the-end iterator.
  Iterator() = default;
  // Iterator(channel) receives the first item (a yield point).
  explicit Iterator(Channel* channel) : channel_(channel) { ++*this; }
  // operator*() is the current item; move from it freely.
  T& operator*() const { return *current_; }
  // operator->() points at the current item.
  T* operator->() const { return &*current_; }
  // operator++() receives the next item (a yield point).
  Iterator& operator++() {
    current_ = channel_->receive();
    return *this;
  }
  // operator++(int) receives the next item (a yield point).
  void operator++(int) { ++*this; }
  // operator==() is true at the end: closed and drained.
  friend bool operator==(const Iterator& it, std::default_sentinel_t) noexcept {
    return !it.current_.has_value();
  }

 private:
  Channel* channel_ = nullptr;
  mutable std::optional<T> current_;  // mutable: operator* is const for the iterator concepts
};

}  // namespace weft
