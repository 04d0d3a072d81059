// decode(): bytes to a bounded Plan (see program_plan.hpp).
#include "support/program_plan.hpp"

#include <iterator>

namespace weft::test {

namespace {

constexpr int kMaxOps = 160;
constexpr int kMaxFibers = 28;
constexpr int kMaxDepth = 3;

// Op of a byte: every operation once, and the ones that make the program
// interesting (finalizers, forks, interrupts, channel traffic, masks) again.
constexpr Op kExtra[] = {Op::finalizer,     Op::finalizer, Op::finalizer, Op::fork,
                         Op::fork,          Op::send,      Op::receive,   Op::interrupt_any,
                         Op::interrupt_any, Op::mask};
constexpr unsigned kOps = static_cast<unsigned>(Op::count_);

Op op_of(std::uint8_t b) noexcept {
  const unsigned i = b % (kOps + std::size(kExtra));
  return i < kOps ? static_cast<Op>(i) : kExtra[i - kOps];
}

class Decoder {
 public:
  explicit Decoder(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}

  std::uint8_t byte() noexcept { return pos_ < bytes_.size() ? bytes_[pos_++] : 0; }

  // child() is a fork node whose body runs in a new, unmasked fiber.
  Node child(int depth) {
    Node n;
    n.op = Op::fork;
    --fibers_left_;
    n.body = block(depth + 1, /*masked=*/false, /*holds_mutex=*/false, 5);
    return n;
  }

  std::vector<Node> block(int depth, bool masked, bool holds_mutex, int max_len) {
    std::vector<Node> out;
    const int len = 1 + byte() % max_len;
    for (int i = 0; i < len && ops_left_ > 0; ++i) {
      --ops_left_;
      Node n;
      n.op = op_of(byte());
      n.arg = byte();
      shape(n, depth, masked, holds_mutex);
      out.push_back(std::move(n));
    }
    return out;
  }

  bool can_fork(int depth, int fibers) const noexcept {
    return depth < kMaxDepth && fibers_left_ >= fibers;
  }

 private:
  // shape() fills the node's body, or demotes it to a yield where it could
  // hang the program (blocking while masked, relocking a held Mutex) or
  // would exceed the bounds.
  void shape(Node& n, int depth, bool masked, bool holds_mutex) {
    switch (n.op) {
      case Op::await_kid:
      case Op::receive:
      case Op::send:
      case Op::latch:
      case Op::deferred_get:
        if (masked) n.op = Op::yield;
        break;
      case Op::lock:
      case Op::acquire:
        if (masked || (n.op == Op::lock && holds_mutex)) {
          n.op = Op::yield;
          break;
        }
        n.body = block(depth, masked, holds_mutex || n.op == Op::lock, 3);
        break;
      case Op::mask:
        n.body = block(depth, !masked, holds_mutex, 3);
        break;
      case Op::finalizer:
        n.body = block(depth, masked, holds_mutex, 4);
        break;
      case Op::fork:
      case Op::timeout:
        if (!can_fork(depth, 1)) {
          n.op = Op::yield;
          break;
        }
        n = Node{n.op, n.arg, child(depth).body};
        break;
      case Op::scope:
      case Op::race: {
        const int k = n.op == Op::scope ? 1 + n.arg % 3 : 2 + n.arg % 2;
        if (masked || !can_fork(depth, k)) {
          n.op = Op::yield;
          break;
        }
        for (int i = 0; i < k; ++i) n.body.push_back(child(depth));
        break;
      }
      default:
        break;
    }
  }

  std::span<const std::uint8_t> bytes_;
  std::size_t pos_ = 0;
  int ops_left_ = kMaxOps;
  int fibers_left_ = kMaxFibers;
};

}  // namespace

Plan decode(std::span<const std::uint8_t> bytes) {
  Decoder d(bytes);
  Plan p;
  p.channel_capacity = d.byte() % 4;
  p.permits = 1 + d.byte() % 2;
  p.latch_count = 1 + d.byte() % 3;
  p.grace_us = 4u * d.byte();
  const int tops = 1 + d.byte() % 4;
  for (int i = 0; i < tops && d.can_fork(0, 1); ++i) p.tops.push_back(d.child(-1));
  return p;
}

}  // namespace weft::test
