// Cause, CauseError and rethrow_cause(). Every walk below uses an explicit
// stack: a race over thousands of failing fibers folds into a tree thousands of
// nodes deep, and a recursive walk would overflow a 256 KiB fiber stack.
#include "weft/cause.hpp"

#include <array>
#include <atomic>
#include <cstdlib>
#include <iterator>
#include <ostream>
#include <stdexcept>
#include <typeinfo>
#include <utility>

#include "weft/detail/spin_lock.hpp"
#include "weft/interrupted.hpp"

#include "exit/rethrown.hpp"

#if __has_include(<cxxabi.h>)
#include <cxxabi.h>
#define WEFT_HAVE_CXXABI 1
#endif

namespace weft {

// Invariant: a Node is never modified after its factory returns it (so copies
// may be read from several threads at once). kind is never CauseKind::empty;
// left/right are non-empty exactly for sequential/parallel.
struct Cause::Node {
  CauseKind kind = CauseKind::empty;
  bool has_failure = false;    // some leaf below (or this one) is a fail node
  bool has_interrupt = false;  // some leaf below (or this one) is an interrupt node
  FiberId interruptor;         // interrupt nodes
  std::exception_ptr error;    // fail nodes
  std::string note;            // fail nodes, optional
  Site site;                   // fail and interrupt nodes, optional
  Cause left;                  // sequential/parallel nodes
  Cause right;                 // sequential/parallel nodes

  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  ~Node();
};

// ~Node destroys deep trees without recursion (a trampoline): the outermost
// destructor on this thread drains a queue, and nested ones only hand their
// children to it. Nothing here yields, so the thread_local stays ours
// throughout (an exception's destructor that switched fibers would break this).
Cause::Node::~Node() {
  thread_local std::vector<Cause>* tls_pending = nullptr;
  auto hand_over = [](std::vector<Cause>& queue, Cause& child) noexcept {
    if (child.node_ == nullptr || child.node_->left.empty()) return;  // leaves never recurse
    try {
      queue.push_back(std::move(child));
    } catch (...) {
      // Out of memory: child is untouched (strong guarantee) and dies with us, recursively.
    }
  };
  if (left.empty()) return;
  if (tls_pending != nullptr) {
    hand_over(*tls_pending, left);
    hand_over(*tls_pending, right);
    return;
  }
  std::vector<Cause> queue;
  tls_pending = &queue;
  hand_over(queue, left);
  hand_over(queue, right);
  while (!queue.empty()) {
    Cause doomed = std::move(queue.back());
    queue.pop_back();
  }  // doomed's node, if this was its last owner, pushes its children onto queue
  tls_pending = nullptr;
}

namespace {

// NeverDestroyed holds the empty cause without ever running its destructor,
// so references to it stay valid during static destruction.
union NeverDestroyed {
  Cause cause;
  constexpr NeverDestroyed() : cause() {}
  ~NeverDestroyed() {}
};
constinit const NeverDestroyed kEmpty;

bool is_composite(CauseKind kind) {
  return kind == CauseKind::sequential || kind == CauseKind::parallel;
}

// Relevant predicates for walk_leaves(): which subtrees to enter.
bool any_leaf(const Cause& cause) noexcept { return !cause.empty(); }
bool failure_below(const Cause& cause) noexcept { return cause.has_failure(); }
bool interrupt_below(const Cause& cause) noexcept { return cause.has_interrupt(); }

// walk_leaves() visits the leaves of root depth-first, left to right, skipping
// subtrees where relevant() is false; it stops when visit() returns false.
template <class Visit>
void walk_leaves(const Cause& root, bool (*relevant)(const Cause&) noexcept, Visit visit) {
  std::vector<const Cause*> stack{&root};
  while (!stack.empty()) {
    const Cause* cause = stack.back();
    stack.pop_back();
    if (!relevant(*cause)) continue;
    if (is_composite(cause->kind())) {
      stack.push_back(&cause->right());
      stack.push_back(&cause->left());
    } else if (!visit(*cause)) {
      return;
    }
  }
}

// operands() flattens a run of same-kind nodes: Sequential(Sequential(a, b), c)
// has operands a, b, c (both kinds are associative), in order.
std::vector<const Cause*> operands(const Cause& root) {
  std::vector<const Cause*> out;
  std::vector<const Cause*> stack{&root.right(), &root.left()};
  while (!stack.empty()) {
    const Cause* cause = stack.back();
    stack.pop_back();
    if (cause->kind() == root.kind()) {
      stack.push_back(&cause->right());
      stack.push_back(&cause->left());
    } else {
      out.push_back(cause);
    }
  }
  return out;
}

// current_exception_type_name() demangles the type of the exception being handled.
std::string current_exception_type_name() {
#ifdef WEFT_HAVE_CXXABI
  const std::type_info* type = abi::__cxa_current_exception_type();
  if (type == nullptr) return "unknown exception";
  int status = 0;
  char* demangled = abi::__cxa_demangle(type->name(), nullptr, nullptr, &status);
  std::string name = (status == 0 && demangled != nullptr) ? demangled : type->name();
  std::free(demangled);
  return name;
#else
  return "exception";
#endif
}

// describe() is "<type>: <what()>" for std::exception, "<type>" otherwise.
std::string describe(const std::exception_ptr& error) {
  if (error == nullptr) return "(null exception_ptr)";
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return current_exception_type_name() + ": " + e.what();
  } catch (const Interrupted& e) {
    return e.what();  // already "weft::Interrupted: interrupted by ..."
  } catch (...) {
    return current_exception_type_name();
  }
}

// site_text() is "#12 'user-3'", or "#12" for a fiber without a name.
std::string site_text(const Cause::Site& site) {
  if (site.name.empty()) return fmt::format("{}", site.fiber);
  return fmt::format("{} '{}'", site.fiber, site.name);
}

// one_line() is text with its line breaks spelled "\n" and "\r", for the one-line form.
std::string one_line(std::string text) {
  for (std::size_t at = 0; (at = text.find_first_of("\n\r", at)) != std::string::npos; at += 2)
    text.replace(at, 1, text[at] == '\n' ? "\\n" : "\\r");
  return text;
}

// leaf_label() is the pretty() line of a leaf, e.g.
// "Fail (in finalizer) in fiber #12 'user-3': std::logic_error: x".
std::string leaf_label(const Cause& cause) {
  std::string where = cause.site().fiber ? " in fiber " + site_text(cause.site()) : "";
  switch (cause.kind()) {
    case CauseKind::fail:
      if (cause.note().empty())
        return fmt::format("Fail{}: {}", where, describe(cause.exception()));
      return fmt::format("Fail ({}){}: {}", cause.note(), where, describe(cause.exception()));
    case CauseKind::interrupt:
      return fmt::format("Interrupted by {}{}", cause.interruptor(), where);
    default:
      return "(empty)";
  }
}

// leaf_line() is the one-line form of a leaf, e.g. "Fail(#12 'user-3': DbError: x) [in
// finalizer]" or "Interrupt(#3 in #12 'user-3')".
std::string leaf_line(const Cause& cause) {
  const Cause::Site& site = cause.site();
  if (cause.kind() == CauseKind::interrupt) {
    if (!site.fiber) return fmt::format("Interrupt({})", cause.interruptor());
    return fmt::format("Interrupt({} in {})", cause.interruptor(), one_line(site_text(site)));
  }
  std::string out = "Fail(";
  if (site.fiber) out.append(one_line(site_text(site))).append(": ");
  out.append(one_line(describe(cause.exception()))).append(")");
  if (!cause.note().empty())
    out.append(" [").append(one_line(std::string(cause.note()))).append("]");
  return out;
}

// carried_cause() is the cause a CauseError carries, or the empty cause when
// error is not a CauseError.
Cause carried_cause(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const CauseError& e) {
    return e.cause();
  } catch (...) {
  }
  return Cause();
}

// append_lines() appends text, prefixing every continuation line with indent
// so that multi-line messages stay inside their branch of the tree.
void append_lines(std::string& out, std::string_view text, std::string_view indent) {
  for (std::size_t newline; (newline = text.find('\n')) != std::string_view::npos;) {
    out.append(text.substr(0, newline + 1)).append(indent);
    text.remove_prefix(newline + 1);
  }
  out.append(text);
}

// count_failures() counts the fail leaves of cause, stopping once it reaches limit.
std::size_t count_failures(const Cause& cause, std::size_t limit) {
  std::size_t count = 0;
  walk_leaves(cause, failure_below, [&](const Cause& leaf) {
    if (leaf.kind() == CauseKind::fail) ++count;
    return count < limit;
  });
  return count;
}

std::shared_ptr<const std::string> cause_error_message(const Cause& cause) noexcept {
  try {
    std::size_t failures = count_failures(cause, 2);
    const char* head = failures >= 2   ? "weft: several failures:\n"
                       : failures == 1 ? "weft: failure:\n"
                       : cause.empty() ? "weft: CauseError with an empty cause"
                                       : "weft: interrupted:\n";
    return std::make_shared<const std::string>(head + (cause.empty() ? "" : cause.pretty()));
  } catch (...) {
    return nullptr;  // out of memory: what() falls back to a fixed message
  }
}

}  // namespace

Cause Cause::fail(std::exception_ptr error, std::string_view note) {
  return fail(std::move(error), note, Site());
}

// The one place where an exception becomes a cause: a CauseError is
// unwrapped and a rethrown original is its old leaf, so no path (a fiber's
// end, a finalizer, Deferred, a user's catch block) piles wrappers up.
Cause Cause::fail(std::exception_ptr error, std::string_view note, Site where) {
  if (error == nullptr)
    throw std::invalid_argument("weft: Cause::fail() needs a non-null exception");
  if (Cause carried = carried_cause(error); !carried.empty())
    return with_defaults(carried, note, where);
  if (Cause original = detail::recall_rethrown(error); !original.empty())
    return with_defaults(original, note, where);
  return make_leaf(CauseKind::fail, std::move(error), note, FiberId(), std::move(where));
}

Cause Cause::interrupt(FiberId by) { return interrupt(by, Site()); }

Cause Cause::interrupt(FiberId by, Site interrupted) {
  return make_leaf(CauseKind::interrupt, nullptr, {}, by, std::move(interrupted));
}

Cause Cause::make_leaf(CauseKind kind, std::exception_ptr error, std::string_view note, FiberId by,
                       Site where) {
  auto node = std::make_shared<Node>();
  node->kind = kind;
  node->has_failure = kind == CauseKind::fail;
  node->has_interrupt = kind == CauseKind::interrupt;
  node->interruptor = by;
  node->error = std::move(error);
  node->note = note;
  node->site = std::move(where);
  return Cause(std::move(node));
}

Cause Cause::with_defaults(const Cause& cause, std::string_view note, const Site& where) {
  auto lacks = [&](const Cause& leaf) {
    return (!leaf.site().fiber && where.fiber) ||
           (leaf.kind() == CauseKind::fail && leaf.note().empty() && !note.empty());
  };
  bool changes = false;
  walk_leaves(cause, any_leaf, [&](const Cause& leaf) { return !(changes = lacks(leaf)); });
  if (!changes) return cause;
  // Rebuild bottom-up with an explicit stack (trees may be thousands deep);
  // a subtree whose leaves all change nothing is shared, not copied.
  struct Item {
    const Cause* cause;
    bool children_built;
  };
  std::vector<Item> stack{{&cause, false}};
  std::vector<Cause> built;
  while (!stack.empty()) {
    Item item = stack.back();
    stack.pop_back();
    const Cause& c = *item.cause;
    if (!is_composite(c.kind())) {
      if (!lacks(c)) {
        built.push_back(c);
        continue;
      }
      const Node& n = *c.node_;
      built.push_back(make_leaf(n.kind, n.error, n.note.empty() ? note : std::string_view(n.note),
                                n.interruptor, n.site.fiber ? n.site : where));
    } else if (!item.children_built) {
      stack.push_back({item.cause, true});
      stack.push_back({&c.right(), false});
      stack.push_back({&c.left(), false});  // popped first: built holds left, then right
    } else {
      Cause right = std::move(built.back());
      built.pop_back();
      Cause left = std::move(built.back());
      built.pop_back();
      if (left.node_ == c.left().node_ && right.node_ == c.right().node_)
        built.push_back(c);
      else
        built.push_back(combine(c.kind(), std::move(left), std::move(right)));
    }
  }
  return std::move(built.back());
}

Cause Cause::sequential(Cause first, Cause then) {
  return combine(CauseKind::sequential, std::move(first), std::move(then));
}

Cause Cause::parallel(Cause a, Cause b) {
  return combine(CauseKind::parallel, std::move(a), std::move(b));
}

Cause Cause::combine(CauseKind kind, Cause left, Cause right) {
  if (left.empty()) return right;
  if (right.empty()) return left;
  auto node = std::make_shared<Node>();
  node->kind = kind;
  node->has_failure = left.has_failure() || right.has_failure();
  node->has_interrupt = left.has_interrupt() || right.has_interrupt();
  node->left = std::move(left);
  node->right = std::move(right);
  return Cause(std::move(node));
}

CauseKind Cause::kind() const noexcept { return node_ ? node_->kind : CauseKind::empty; }

std::exception_ptr Cause::exception() const noexcept { return node_ ? node_->error : nullptr; }

std::string_view Cause::note() const noexcept {
  return node_ ? std::string_view(node_->note) : std::string_view();
}

FiberId Cause::interruptor() const noexcept { return node_ ? node_->interruptor : FiberId(); }

const Cause::Site& Cause::site() const noexcept {
  // Never destroyed, like kEmpty; on the heap because std::string is not
  // constinit with every compiler we build with (clang 14 + libstdc++ 12).
  static const Site* const no_site = new Site();
  return node_ ? node_->site : *no_site;
}

const Cause& Cause::left() const noexcept { return node_ ? node_->left : detail::empty_cause(); }

const Cause& Cause::right() const noexcept { return node_ ? node_->right : detail::empty_cause(); }

bool Cause::has_failure() const noexcept { return node_ && node_->has_failure; }

bool Cause::has_interrupt() const noexcept { return node_ && node_->has_interrupt; }

std::vector<std::exception_ptr> Cause::failures() const {
  std::vector<std::exception_ptr> out;
  walk_leaves(*this, failure_below, [&](const Cause& leaf) {
    if (leaf.kind() == CauseKind::fail) out.push_back(leaf.exception());
    return true;
  });
  return out;
}

std::vector<FiberId> Cause::interruptors() const {
  std::vector<FiberId> out;
  walk_leaves(*this, interrupt_below, [&](const Cause& leaf) {
    if (leaf.kind() == CauseKind::interrupt) out.push_back(leaf.interruptor());
    return true;
  });
  return out;
}

std::vector<Cause::Site> Cause::failure_sites() const {
  std::vector<Site> out;
  walk_leaves(*this, failure_below, [&](const Cause& leaf) {
    if (leaf.kind() == CauseKind::fail) out.push_back(leaf.site());
    return true;
  });
  return out;
}

std::vector<Cause::Site> Cause::interrupt_sites() const {
  std::vector<Site> out;
  walk_leaves(*this, interrupt_below, [&](const Cause& leaf) {
    if (leaf.kind() == CauseKind::interrupt) out.push_back(leaf.site());
    return true;
  });
  return out;
}

const void* Cause::find_failure(FailureProbe probe) const {
  const void* found = nullptr;
  walk_leaves(*this, failure_below, [&](const Cause& leaf) {
    if (leaf.kind() == CauseKind::fail) found = probe(leaf.node_->error);
    return found == nullptr;
  });
  return found;
}

std::string Cause::pretty() const {
  struct Item {
    const Cause* cause;
    std::string head;    // prefix of the node's own line
    std::string indent;  // prefix of the lines below it (children, continuation lines)
  };
  std::string out;
  std::vector<Item> stack;
  stack.push_back({this, "", ""});
  while (!stack.empty()) {
    Item item = std::move(stack.back());
    stack.pop_back();
    if (!out.empty()) out += '\n';
    out += item.head;
    if (!is_composite(item.cause->kind())) {
      append_lines(out, leaf_label(*item.cause), item.indent);
      continue;
    }
    out += item.cause->kind() == CauseKind::sequential ? "Sequential" : "Parallel";
    std::vector<const Cause*> children = operands(*item.cause);
    for (std::size_t i = children.size(); i-- > 0;) {  // reversed: the first child pops first
      bool last = i + 1 == children.size();
      stack.push_back({children[i], item.indent + (last ? "└─ " : "├─ "),
                       item.indent + (last ? "   " : "│  ")});
    }
  }
  return out;
}

std::ostream& operator<<(std::ostream& os, const Cause& cause) {
  return os << detail::format_cause(cause);
}

CauseError::CauseError(Cause cause)
    : cause_(std::move(cause)), message_(cause_error_message(cause_)) {}

const char* CauseError::what() const noexcept {
  return message_ ? message_->c_str() : "weft: several failures (no memory left to describe them)";
}

namespace detail {

void rethrow_cause(const Cause& cause) {
  if (cause.has_failure()) {
    if (count_failures(cause, 2) >= 2) throw CauseError(cause);
    const Cause* failure = nullptr;
    walk_leaves(cause, failure_below, [&](const Cause& leaf) {
      if (leaf.kind() == CauseKind::fail) failure = &leaf;
      return failure == nullptr;
    });
    remember_rethrown(*failure);
    std::rethrow_exception(failure->exception());
  }
  if (cause.has_interrupt()) throw Interrupted(cause);
  throw std::logic_error("weft: rethrow_cause() needs a non-empty cause");
}

const Cause& empty_cause() noexcept { return kEmpty.cause; }

std::string format_cause(const Cause& cause) {
  if (cause.empty()) return "Empty";
  struct Item {
    const Cause* cause;     // a node to print, or null to print text
    std::string_view text;  // punctuation between operands
  };
  std::string out;
  std::vector<Item> stack{{&cause, {}}};
  while (!stack.empty()) {
    Item item = stack.back();
    stack.pop_back();
    if (item.cause == nullptr) {
      out += item.text;
      continue;
    }
    switch (item.cause->kind()) {
      case CauseKind::fail:
      case CauseKind::interrupt:
        out += leaf_line(*item.cause);
        break;
      case CauseKind::sequential:
      case CauseKind::parallel: {
        bool parallel = item.cause->kind() == CauseKind::parallel;
        std::vector<const Cause*> children = operands(*item.cause);
        if (parallel) stack.push_back({nullptr, ")"});
        for (std::size_t i = children.size(); i-- > 0;) {  // reversed: the first pops first
          stack.push_back({children[i], {}});
          if (i > 0) stack.push_back({nullptr, parallel ? ", " : " then "});
        }
        if (parallel) out += "Parallel(";
        break;
      }
      case CauseKind::empty:
        out += "Empty";  // only reachable as the root
        break;
    }
  }
  return out;
}

std::ostream& write_to(std::ostream& os, std::string_view text) { return os << text; }

}  // namespace detail
}  // namespace weft
