#include "unwind/handler_walk.hpp"

#include <unwind.h>

#include <cstring>
#include <memory>

#include "unwind/frame_rule.hpp"

namespace weft::detail::unwind {
namespace {

// A direct-mapped cache per thread: no lock, no sharing. A walk never
// switches fibers, so it runs on one thread from start to end. 512 entries
// (20 KiB, allocated on a thread's first walk) hold every return address of
// the suite's and the kernels' parked stacks many times over; a collision
// costs one more decode.
constexpr std::size_t kEntries = 512;
constexpr int kMaxFrames = Chain::kMax;  // deeper: let the unwinder do it

struct Entry {
  std::uintptr_t ra = 0;
  FrameRule rule;
};

struct Cache {
  Entry entries[kEntries];
  std::uint64_t decoded = 0;
};

thread_local std::unique_ptr<Cache> tls_cache;

FrameRule lookup(Cache& c, std::uintptr_t ra) noexcept {
  // Fibonacci hashing of the address (Knuth, TAOCP 6.4).
  Entry& e = c.entries[(ra * 0x9e3779b97f4a7c15ull) >> 55];
  if (e.ra != ra) {
    e.rule = decode(ra);
    e.ra = ra;
    ++c.decoded;
  }
  return e.rule;
}

bool load(std::uintptr_t at, std::uintptr_t lo, std::uintptr_t hi, std::uintptr_t& out) noexcept {
  if (at < lo || at > hi - sizeof(std::uintptr_t) || at % alignof(std::uintptr_t) != 0)
    return false;
  std::memcpy(&out, reinterpret_cast<const void*>(at), sizeof out);
  return true;
}

}  // namespace

Walk walk_to_catch(const void* fp, Target target, std::uintptr_t body_caller, std::uintptr_t lo,
                   std::uintptr_t hi, Chain* chain) noexcept {
  if constexpr (!kSupported) {
    return Walk::unknown;
  } else {
    if (!tls_cache) {
      tls_cache.reset(new (std::nothrow) Cache{});
      if (!tls_cache) return Walk::unknown;
    }
    Cache& c = *tls_cache;
    const auto frame = reinterpret_cast<std::uintptr_t>(fp);
    std::uintptr_t rbp, rip;
    if (!load(frame, lo, hi, rbp) || !load(frame + 8, lo, hi, rip)) return Walk::unknown;
    std::uintptr_t rsp = frame + 16;  // the caller's rsp once we return
    for (int depth = 0; depth < kMaxFrames; ++depth) {
      const FrameRule cur = lookup(c, rip);
      if (!cur.walkable) return Walk::unknown;
      const std::uintptr_t cfa = (cur.cfa_is_rbp ? rbp : rsp) + cur.cfa_offset;
      // A frame's CFA lies above its rsp, on the same stack.
      if (cfa <= rsp || cfa > hi) return Walk::unknown;
      std::uintptr_t next_rip, next_rbp = rbp;
      if (!load(cfa + cur.ra_offset, lo, hi, next_rip)) return Walk::unknown;
      if (cur.rbp_saved && !load(cfa + cur.rbp_offset, lo, hi, next_rbp)) return Walk::unknown;
      if (chain != nullptr) {
        chain->ip[depth] = rip;
        chain->sp[depth] = rsp;
        chain->frames = depth + 1;
      }
      // The scope's frame may be the body's too (its code inlined there).
      if (target == Target::scope && cur.scope_chain) return Walk::clear;
      if (lookup(c, next_rip).func == body_caller) {  // `cur` is the body
        return target == Target::body && cur.body_chain ? Walk::clear : Walk::handler;
      }
      if (cur.handlers != 0) return Walk::handler;
      rip = next_rip;
      rsp = cfa;
      rbp = next_rbp;
    }
    return Walk::unknown;
  }
}

namespace {

struct Compare {
  const Chain* chain;
  int matched = 0;
};

_Unwind_Reason_Code compare_frame(_Unwind_Context* ctx, void* arg) {
  auto& cmp = *static_cast<Compare*>(arg);
  const Chain& c = *cmp.chain;
  if (cmp.matched == c.frames) return _URC_END_OF_STACK;  // every frame met
  const std::uintptr_t ip = _Unwind_GetIP(ctx);
  if (cmp.matched == 0 && ip != c.ip[0]) return _URC_NO_REASON;  // the frames below the walk's
  // libgcc's "CFA" of a context is the callee's CFA: the frame's stack
  // pointer at its call, which is what the walk calls rsp.
  if (ip != c.ip[cmp.matched] || _Unwind_GetCFA(ctx) != c.sp[cmp.matched]) {
    return _URC_END_OF_STACK;  // a mismatch: matched stays short
  }
  ++cmp.matched;
  return _URC_NO_REASON;
}

}  // namespace

bool check_against_libgcc(const Chain& chain) noexcept {
  Compare cmp{&chain};
  _Unwind_Backtrace(&compare_frame, &cmp);
  return cmp.matched == chain.frames;
}

std::uint64_t decoded_rules() noexcept { return tls_cache ? tls_cache->decoded : 0; }

}  // namespace weft::detail::unwind
