// Decoding a FrameRule from .eh_frame and .gcc_except_table (frame_rule.hpp).
//
// The FDE is found by libgcc's own _Unwind_Find_FDE (the table the unwinder
// uses, registered objects and dl_iterate_phdr alike), so this file only
// reads the records: a CIE and its FDE (LSB "Exception Frames"; DWARF 4
// 6.4.1-6.4.2 for the call frame instructions), then the LSDA's call-site
// table (Itanium C++ ABI exception handling, as GCC writes it).
#include "unwind/frame_rule.hpp"

#include <cstring>
#include <typeinfo>

#include <weft/detail/fiber_core.hpp>
#include <weft/detail/timeout_scope.hpp>
#include <weft/interrupted.hpp>

extern "C" {
// libgcc (unwind-dw2-fde.h; exported by libgcc_s.so.1 since GCC_3.0, and by
// libgcc_eh.a): the FDE covering pc, with the bases its encodings need.
struct dwarf_eh_bases {
  void* tbase;
  void* dbase;
  void* func;
};
const void* _Unwind_Find_FDE(void* pc, struct dwarf_eh_bases* bases);
// libstdc++'s personality: the only one whose LSDA we read.
int __gxx_personality_v0(int, int, std::uint64_t, void*, void*);
}

namespace weft::detail::unwind {
namespace {

#if defined(WEFT_UNWIND_WALK)

// DWARF register numbers, x86-64 System V psABI, figure 3.36.
constexpr unsigned kRbp = 6;
constexpr unsigned kRsp = 7;
constexpr unsigned kRa = 16;

// Pointer encodings (LSB "DWARF Exception Header Encoding").
constexpr std::uint8_t kOmit = 0xff;
constexpr std::uint8_t kAbsPtr = 0x00, kUleb = 0x01, kUdata2 = 0x02, kUdata4 = 0x03, kUdata8 = 0x04,
                       kSleb = 0x09, kSdata2 = 0x0a, kSdata4 = 0x0b, kSdata8 = 0x0c;
constexpr std::uint8_t kPcRel = 0x10, kTextRel = 0x20, kDataRel = 0x30, kFuncRel = 0x40;
constexpr std::uint8_t kIndirect = 0x80;

// Reader: a bounds-free cursor (the records were emitted by a compiler and
// found by libgcc; each length field still bounds the loops below).
struct Reader {
  const std::uint8_t* p;

  std::uint8_t u8() noexcept { return *p++; }
  template <class T>
  T fixed() noexcept {
    T v;
    std::memcpy(&v, p, sizeof v);
    p += sizeof v;
    return v;
  }
  // leb() reads a LEB128 number's bits; `shift` and `last` say how many
  // and the final byte, for sleb()'s sign extension.
  std::uint64_t leb(unsigned& shift, std::uint8_t& last) noexcept {
    std::uint64_t v = 0;
    shift = 0;
    do {
      last = *p++;
      if (shift < 64) v |= std::uint64_t(last & 0x7f) << shift;
      shift += 7;
    } while ((last & 0x80) != 0);
    return v;
  }
  std::uint64_t uleb() noexcept {
    unsigned shift;
    std::uint8_t last;
    return leb(shift, last);
  }
  std::int64_t sleb() noexcept {
    unsigned shift;
    std::uint8_t last;
    std::uint64_t v = leb(shift, last);
    if (shift < 64 && (last & 0x40) != 0) v |= ~std::uint64_t{0} << shift;
    return static_cast<std::int64_t>(v);
  }
  // encoded() reads a pointer in `enc`; false for an encoding we do not read.
  bool encoded(std::uint8_t enc, const dwarf_eh_bases& bases, std::uintptr_t func,
               std::uintptr_t& out) noexcept {
    if (enc == kOmit) return false;
    const std::uintptr_t at = reinterpret_cast<std::uintptr_t>(p);
    std::uintptr_t v;
    switch (enc & 0x0f) {
      case kAbsPtr:
        v = fixed<std::uintptr_t>();
        break;
      case kUleb:
        v = static_cast<std::uintptr_t>(uleb());
        break;
      case kUdata2:
        v = fixed<std::uint16_t>();
        break;
      case kUdata4:
        v = fixed<std::uint32_t>();
        break;
      case kUdata8:
        v = static_cast<std::uintptr_t>(fixed<std::uint64_t>());
        break;
      case kSleb:
        v = static_cast<std::uintptr_t>(sleb());
        break;
      case kSdata2:
        v = static_cast<std::uintptr_t>(std::intptr_t(fixed<std::int16_t>()));
        break;
      case kSdata4:
        v = static_cast<std::uintptr_t>(std::intptr_t(fixed<std::int32_t>()));
        break;
      case kSdata8:
        v = static_cast<std::uintptr_t>(fixed<std::int64_t>());
        break;
      default:
        return false;
    }
    // As libgcc's read_encoded_value_with_base: a zero value stays zero (an
    // omitted pointer), whatever its base.
    if (v != 0) {
      switch (enc & 0x70) {
        case 0:
          break;
        case kPcRel:
          v += at;
          break;
        case kTextRel:
          v += reinterpret_cast<std::uintptr_t>(bases.tbase);
          break;
        case kDataRel:
          v += reinterpret_cast<std::uintptr_t>(bases.dbase);
          break;
        case kFuncRel:
          v += func;
          break;
        default:
          return false;  // aligned: GCC never emits it here
      }
      if ((enc & kIndirect) != 0) v = *reinterpret_cast<const std::uintptr_t*>(v);
    }
    out = v;
    return true;
  }
};

// The rules we track while running the CFA program: the CFA, rbp and the
// return address column. `ok` goes false on anything outside that.
struct Row {
  unsigned cfa_reg = kRsp;
  std::int64_t cfa_off = 8;
  bool rbp_saved = false;
  std::int64_t rbp_off = 0;
  bool ra_set = false;
  std::int64_t ra_off = 0;
};

struct Cie {
  std::uint64_t code_align = 1;
  std::int64_t data_align = 1;
  unsigned ra_column = kRa;
  std::uint8_t fde_enc = kAbsPtr;
  std::uint8_t lsda_enc = kOmit;
  std::uintptr_t personality = 0;
  bool augmented = false;  // 'z': FDEs carry augmentation data
  bool signal = false;     // 'S'
  const std::uint8_t* insns = nullptr;
  const std::uint8_t* end = nullptr;
};

bool parse_cie(const std::uint8_t* at, const dwarf_eh_bases& bases, Cie& cie) noexcept {
  Reader r{at};
  const std::uint32_t len = r.fixed<std::uint32_t>();
  if (len == 0xffffffffu) return false;  // 64-bit DWARF: not emitted for .eh_frame
  cie.end = r.p + len;
  if (r.fixed<std::uint32_t>() != 0) return false;  // not a CIE
  const std::uint8_t version = r.u8();
  if (version != 1 && version != 3) return false;
  const char* aug = reinterpret_cast<const char*>(r.p);
  r.p += std::strlen(aug) + 1;
  if (aug[0] != '\0' && aug[0] != 'z') return false;
  cie.code_align = r.uleb();
  cie.data_align = r.sleb();
  cie.ra_column = version == 1 ? r.u8() : static_cast<unsigned>(r.uleb());
  if (aug[0] == 'z') {
    cie.augmented = true;
    const std::uint64_t n = r.uleb();
    const std::uint8_t* data_end = r.p + n;
    for (const char* a = aug + 1; *a != '\0'; ++a) {
      switch (*a) {
        case 'L':
          cie.lsda_enc = r.u8();
          break;
        case 'R':
          cie.fde_enc = r.u8();
          break;
        case 'P': {
          const std::uint8_t enc = r.u8();
          if (!r.encoded(enc, bases, 0, cie.personality)) return false;
          break;
        }
        case 'S':
          cie.signal = true;
          break;
        default:
          return false;  // 'B' and the like: not for us
      }
    }
    r.p = data_end;
  }
  cie.insns = r.p;
  return true;
}

// run_cfa() executes the call frame instructions in [p, end) while the row's
// location is below `target`; false on an instruction we do not model for the
// columns we track.
bool run_cfa(const std::uint8_t* p, const std::uint8_t* end, const Cie& cie,
             const dwarf_eh_bases& bases, std::uintptr_t func, std::uintptr_t& loc,
             std::uintptr_t target, Row& row, const Row& initial) noexcept {
  constexpr int kStates = 8;
  Row saved[kStates];
  int depth = 0;
  Reader r{p};
  auto set_offset = [&](std::uint64_t reg, std::int64_t off) {
    if (reg == kRbp) {
      row.rbp_saved = true;
      row.rbp_off = off;
    } else if (reg == cie.ra_column) {
      row.ra_set = true;
      row.ra_off = off;
    }
  };
  auto restore = [&](std::uint64_t reg) {
    if (reg == kRbp) {
      row.rbp_saved = initial.rbp_saved;
      row.rbp_off = initial.rbp_off;
    } else if (reg == cie.ra_column) {
      row.ra_set = initial.ra_set;
      row.ra_off = initial.ra_off;
    }
  };
  // Rules for rbp or the return address other than "offset(N)" or
  // "same value": we cannot follow them.
  auto tracked = [&](std::uint64_t reg) { return reg == kRbp || reg == cie.ra_column; };
  auto advance = [&](std::uint64_t delta) {
    loc += delta * cie.code_align;
    return loc < target;
  };
  while (r.p < end) {
    const std::uint8_t op = r.u8();
    const std::uint8_t high = op & 0xc0, low = op & 0x3f;
    if (high == 0x40) {  // DW_CFA_advance_loc
      if (!advance(low)) return true;
      continue;
    }
    if (high == 0x80) {  // DW_CFA_offset
      set_offset(low, static_cast<std::int64_t>(r.uleb()) * cie.data_align);
      continue;
    }
    if (high == 0xc0) {  // DW_CFA_restore
      restore(low);
      continue;
    }
    switch (op) {
      case 0x00:
        break;      // nop
      case 0x01: {  // set_loc
        std::uintptr_t to;
        if (!r.encoded(cie.fde_enc, bases, func, to)) return false;
        loc = to;
        if (loc >= target) return true;
        break;
      }
      case 0x02:
        if (!advance(r.u8())) return true;
        break;
      case 0x03:
        if (!advance(r.fixed<std::uint16_t>())) return true;
        break;
      case 0x04:
        if (!advance(r.fixed<std::uint32_t>())) return true;
        break;
      case 0x05: {  // offset_extended
        const std::uint64_t reg = r.uleb();
        set_offset(reg, static_cast<std::int64_t>(r.uleb()) * cie.data_align);
        break;
      }
      case 0x06:
        restore(r.uleb());
        break;      // restore_extended
      case 0x07:    // undefined
      case 0x09: {  // register
        const std::uint64_t reg = r.uleb();
        if (op == 0x09) r.uleb();
        if (tracked(reg)) return false;
        break;
      }
      case 0x08: {  // same_value
        const std::uint64_t reg = r.uleb();
        if (reg == kRbp) row.rbp_saved = false;
        if (reg == cie.ra_column) return false;
        break;
      }
      case 0x0a:  // remember_state
        if (depth == kStates) return false;
        saved[depth++] = row;
        break;
      case 0x0b:  // restore_state
        if (depth == 0) return false;
        row = saved[--depth];
        break;
      case 0x0c:  // def_cfa
        row.cfa_reg = static_cast<unsigned>(r.uleb());
        row.cfa_off = static_cast<std::int64_t>(r.uleb());
        break;
      case 0x0d:
        row.cfa_reg = static_cast<unsigned>(r.uleb());
        break;
      case 0x0e:
        row.cfa_off = static_cast<std::int64_t>(r.uleb());
        break;
      case 0x0f:
        return false;  // def_cfa_expression
      case 0x10:       // expression
      case 0x16: {     // val_expression
        const std::uint64_t reg = r.uleb();
        r.p += r.uleb();
        if (tracked(reg)) return false;
        break;
      }
      case 0x11: {  // offset_extended_sf
        const std::uint64_t reg = r.uleb();
        set_offset(reg, r.sleb() * cie.data_align);
        break;
      }
      case 0x12:  // def_cfa_sf
        row.cfa_reg = static_cast<unsigned>(r.uleb());
        row.cfa_off = r.sleb() * cie.data_align;
        break;
      case 0x13:
        row.cfa_off = r.sleb() * cie.data_align;
        break;      // def_cfa_offset_sf
      case 0x14:    // val_offset
      case 0x15: {  // val_offset_sf
        const std::uint64_t reg = r.uleb();
        if (op == 0x14) {
          r.uleb();
        } else {
          r.sleb();
        }
        if (tracked(reg)) return false;
        break;
      }
      case 0x2e:
        r.uleb();
        break;      // GNU_args_size
      case 0x2f: {  // GNU_negative_offset_extended
        const std::uint64_t reg = r.uleb();
        set_offset(reg, -static_cast<std::int64_t>(r.uleb()) * cie.data_align);
        break;
      }
      default:
        return false;
    }
  }
  return true;
}

std::size_t encoded_size(std::uint8_t enc) noexcept {
  switch (enc & 0x07) {
    case kAbsPtr:
      return sizeof(std::uintptr_t);
    case kUdata2:
      return 2;
    case kUdata4:
      return 4;
    case kUdata8:
      return 8;
    default:
      return 0;  // LEB128 entries: not in a type table
  }
}

// read_handlers() reads the LSDA at the call site holding `ip`: the number
// of handler records in its action chain (0: none, or cleanups only), or
// FrameRule::kTerminate when `ip` is missing from the call-site table; and
// whether the chain is exactly run_body()'s own: `catch (const
// Interrupted&)`, `catch (const BodyMark&)`, `catch (...)` (or a stack
// scope's: the same with ScopeInterrupted and ScopeMark). Neither a count
// nor the runtime's first and last types alone tell it apart: a try of
// inlined code that ends in its own catch (...) does not chain to the outer
// handlers, and acquire_release's try has exactly `catch (const
// Interrupted&)`, `catch (...)`. BodyMark, never thrown, is run_body's alone.
void read_handlers(const std::uint8_t* lsda, const dwarf_eh_bases& bases, std::uintptr_t func,
                   std::uintptr_t ip, FrameRule& rule) noexcept {
  rule.handlers = FrameRule::kTerminate;
  Reader r{lsda};
  std::uintptr_t lp_start = func;
  const std::uint8_t lp_enc = r.u8();
  if (lp_enc != kOmit && !r.encoded(lp_enc, bases, func, lp_start)) return;
  (void)lp_start;  // landing pads are not followed, only the actions
  const std::uint8_t ttype_enc = r.u8();
  const std::uint8_t* ttype_base = nullptr;
  if (ttype_enc != kOmit) {
    const std::uint64_t off = r.uleb();
    ttype_base = r.p + off;
  }
  const std::uint8_t cs_enc = r.u8();
  const std::uint64_t cs_len = r.uleb();
  const std::uint8_t* cs_end = r.p + cs_len;  // the action table follows
  // type_at(): the type_info of a positive filter (null: catch (...)).
  auto type_at = [&](std::int64_t filter, bool& ok) -> const std::type_info* {
    const std::size_t size = encoded_size(ttype_enc);
    ok = ttype_base != nullptr && size != 0;
    if (!ok) return nullptr;
    Reader t{ttype_base - static_cast<std::size_t>(filter) * size};
    std::uintptr_t v = 0;
    ok = t.encoded(ttype_enc, bases, func, v);
    return reinterpret_cast<const std::type_info*>(v);
  };
  while (r.p < cs_end) {
    std::uintptr_t start, len, lp;
    if (!r.encoded(cs_enc & 0x0f, bases, func, start) ||
        !r.encoded(cs_enc & 0x0f, bases, func, len) || !r.encoded(cs_enc & 0x0f, bases, func, lp)) {
      return;
    }
    const std::uint64_t action = r.uleb();
    // Records are sorted by start and relative to the function's start (as
    // the personality reads them; only landing pads are from lp_start).
    if (ip < func + start) return;  // not in the table: terminate
    if (ip >= func + start + len) continue;
    rule.handlers = 0;
    if (action == 0) return;  // a cleanup or nothing
    // The chain: (filter, next) pairs from cs_end + action - 1; a filter of
    // 0 is a cleanup, > 0 a catch clause, < 0 an exception specification.
    Reader a{cs_end + action - 1};
    std::int64_t filters[3] = {0, 0, 0};
    for (int guard = 0; guard < 64; ++guard) {
      const std::int64_t filter = a.sleb();
      const std::uint8_t* next_at = a.p;
      const std::int64_t next = a.sleb();
      if (filter != 0) {
        if (rule.handlers < 3) filters[rule.handlers] = filter;
        ++rule.handlers;
      }
      if (next == 0) break;
      a.p = next_at + next;
      if (guard == 63) rule.handlers = FrameRule::kTerminate;  // too long to judge
    }
    if (rule.handlers == 3 && filters[0] > 0 && filters[1] > 0 && filters[2] > 0) {
      bool ok0 = false, ok1 = false, ok2 = false;
      const std::type_info* first = type_at(filters[0], ok0);
      const std::type_info* second = type_at(filters[1], ok1);
      const std::type_info* third = type_at(filters[2], ok2);
      if (ok0 && ok1 && ok2 && first != nullptr && second != nullptr && third == nullptr) {
        rule.body_chain = *first == typeid(Interrupted) && *second == typeid(BodyMark);
        rule.scope_chain = *first == typeid(ScopeInterrupted) && *second == typeid(ScopeMark);
      }
    }
    return;
  }
}

#endif  // WEFT_UNWIND_WALK

}  // namespace

FrameRule decode(std::uintptr_t ra) noexcept {
  FrameRule rule;
#if defined(WEFT_UNWIND_WALK)
  // The call instruction is the byte before the return address (the
  // unwinder's _Unwind_GetIPInfo - 1 for a non-signal frame).
  const std::uintptr_t ip = ra - 1;
  dwarf_eh_bases bases{};
  const auto* fde =
      static_cast<const std::uint8_t*>(_Unwind_Find_FDE(reinterpret_cast<void*>(ip), &bases));
  if (fde == nullptr) return rule;
  rule.func = reinterpret_cast<std::uintptr_t>(bases.func);

  Reader r{fde};
  const std::uint32_t len = r.fixed<std::uint32_t>();
  if (len == 0xffffffffu || len == 0) return rule;
  const std::uint8_t* fde_end = r.p + len;
  const std::uint8_t* cie_ptr = r.p - r.fixed<std::uint32_t>();
  Cie cie;
  if (!parse_cie(cie_ptr, bases, cie) || cie.signal) return rule;
  if (cie.personality != 0 &&
      cie.personality != reinterpret_cast<std::uintptr_t>(&__gxx_personality_v0)) {
    return rule;  // another language's frame, or a C cleanup-only frame
  }
  std::uintptr_t pc_begin, pc_range;
  if (!r.encoded(cie.fde_enc, bases, 0, pc_begin) ||
      !r.encoded(cie.fde_enc & 0x0f, bases, 0, pc_range)) {
    return rule;
  }
  if (ip < pc_begin || ip >= pc_begin + pc_range) return rule;
  std::uintptr_t lsda = 0;
  if (cie.augmented) {
    const std::uint64_t n = r.uleb();
    const std::uint8_t* data_end = r.p + n;
    if (cie.lsda_enc != kOmit && !r.encoded(cie.lsda_enc, bases, pc_begin, lsda)) return rule;
    r.p = data_end;
  }

  Row initial;
  std::uintptr_t loc = pc_begin;
  if (!run_cfa(cie.insns, cie.end, cie, bases, pc_begin, loc, ~std::uintptr_t{0}, initial,
               initial)) {
    return rule;
  }
  Row row = initial;
  loc = pc_begin;
  if (!run_cfa(r.p, fde_end, cie, bases, pc_begin, loc, ra, row, initial)) return rule;
  if ((row.cfa_reg != kRsp && row.cfa_reg != kRbp) || !row.ra_set) return rule;

  rule.cfa_is_rbp = row.cfa_reg == kRbp;
  rule.cfa_offset = static_cast<std::int32_t>(row.cfa_off);
  rule.ra_offset = static_cast<std::int32_t>(row.ra_off);
  rule.rbp_saved = row.rbp_saved;
  rule.rbp_offset = static_cast<std::int32_t>(row.rbp_off);
  if (lsda != 0)
    read_handlers(reinterpret_cast<const std::uint8_t*>(lsda), bases, pc_begin, ip, rule);
  // A frame with no personality has no LSDA: phase 1 passes it.
  rule.walkable = true;
#else
  (void)ra;
#endif
  return rule;
}

}  // namespace weft::detail::unwind
