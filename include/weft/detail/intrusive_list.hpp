// IntrusiveList: the one doubly linked list of weft's internals (a wait
// queue's waiters, a fiber's children, the runtime's roots). The links live
// in the element (a ListHook member), so linking never allocates and an
// element on a fiber's stack can be queued. Not thread-safe: the owner of
// the list guards it (a spin lock or a mutex).
#pragma once

#include <cstddef>

namespace weft::detail {

// ListHook holds an element's links for one IntrusiveList.
template <class T>
struct ListHook {
  T* prev = nullptr;
  T* next = nullptr;
};

// IntrusiveList<T, &T::hook> links T objects through their `hook` member.
// An element is in at most one list per hook at a time.
template <class T, ListHook<T> T::*Hook>
class IntrusiveList {
 public:
  IntrusiveList() = default;
  IntrusiveList(const IntrusiveList&) = delete;
  IntrusiveList& operator=(const IntrusiveList&) = delete;

  // empty()/size()/front(): the list as it is.
  bool empty() const noexcept { return head_ == nullptr; }
  std::size_t size() const noexcept { return size_; }
  T* front() const noexcept { return head_; }
  // next() is the element after t, nullptr at the end.
  static T* next(const T& t) noexcept { return (t.*Hook).next; }

  // push_front()/push_back() link t, which is in no list.
  void push_front(T& t) noexcept {
    (t.*Hook).prev = nullptr;
    (t.*Hook).next = head_;
    if (head_ != nullptr)
      (head_->*Hook).prev = &t;
    else
      tail_ = &t;
    head_ = &t;
    ++size_;
  }
  void push_back(T& t) noexcept {
    (t.*Hook).next = nullptr;
    (t.*Hook).prev = tail_;
    if (tail_ != nullptr)
      (tail_->*Hook).next = &t;
    else
      head_ = &t;
    tail_ = &t;
    ++size_;
  }
  // remove() unlinks t, which is in this list, and clears its links.
  void remove(T& t) noexcept {
    ListHook<T>& h = t.*Hook;
    if (h.prev != nullptr)
      (h.prev->*Hook).next = h.next;
    else
      head_ = h.next;
    if (h.next != nullptr)
      (h.next->*Hook).prev = h.prev;
    else
      tail_ = h.prev;
    h.prev = h.next = nullptr;
    --size_;
  }

 private:
  T* head_ = nullptr;
  T* tail_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace weft::detail
