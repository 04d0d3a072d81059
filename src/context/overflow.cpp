// The SIGSEGV/SIGBUS handler that turns a guard-page fault into a readable
// "fiber stack overflow" report, and the thread-local state it reads.
#include "context/overflow.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <system_error>

#include "context/stack.hpp"

namespace weft::detail {
namespace {

// --- Static state: the handler registry (the module's only global) ---------
struct HandlerRegistry {
  std::once_flag once;
  struct sigaction previous_segv;
  struct sigaction previous_bus;
  std::size_t page;
};
HandlerRegistry registry{};  // zero-initialised; filled once under `once`

// The running fiber of this thread. initial-exec: the handler must not go
// through __tls_get_addr (it may allocate), and a store is a single mov.
__attribute__((tls_model("initial-exec"))) thread_local const RunningFiberInfo* tls_running = nullptr;

// --- Async-signal-safe message building (no malloc, no stdio, no fmt) ------
class SignalSafeMessage {
 public:
  void append(const char* s) noexcept {
    if (s == nullptr) return;
    while (*s != '\0' && len_ < sizeof(buf_)) buf_[len_++] = *s++;
  }
  void append(std::uint64_t v) noexcept {
    char digits[20];
    std::size_t n = 0;
    do {
      digits[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (n != 0 && len_ < sizeof(buf_)) buf_[len_++] = digits[--n];
  }
  void write_to_stderr() const noexcept {
    std::size_t done = 0;
    while (done < len_) {
      ssize_t r = ::write(STDERR_FILENO, buf_ + done, len_ - done);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return;
      done += static_cast<std::size_t>(r);
    }
  }

 private:
  char buf_[512];
  std::size_t len_ = 0;
};

[[noreturn]] void report_overflow(std::uint64_t fiber_id, const char* name, std::size_t size,
                                  const char* how) noexcept {
  SignalSafeMessage m;
  m.append("weft: fiber stack overflow in fiber #");
  m.append(fiber_id);
  if (name != nullptr) {
    m.append(" '");
    m.append(name);
    m.append("'");
  }
  m.append(" (stack ");
  m.append(static_cast<std::uint64_t>(size));
  m.append(" bytes)");
  m.append(how);
  m.append("; raise ForkOptions::stack_size or RuntimeOptions::stack_size\n");
  m.write_to_stderr();
  std::abort();
}

// The stack pointer at the fault, or 0 where we do not know the register.
std::uintptr_t faulting_sp(void* ucontext) noexcept {
  const auto* uc = static_cast<const ucontext_t*>(ucontext);
  if (uc == nullptr) return 0;
#if defined(__x86_64__)
  return static_cast<std::uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]);
#elif defined(__aarch64__)
  return static_cast<std::uintptr_t>(uc->uc_mcontext.sp);
#else
  return 0;
#endif
}

// A fault is an overflow of `s` when the address, or the stack pointer, is in
// the page below base (the guard page, or a canary stack's canary page) or up
// to kOverflowSlack below that. A canary stack only faults there when it ran
// off the end of its slab; the common canary case is caught at switch-out.
bool is_overflow_fault(const Stack& s, const siginfo_t* info, void* ucontext) noexcept {
  const auto base = reinterpret_cast<std::uintptr_t>(s.base);
  const std::size_t below = registry.page + kOverflowSlack;
  const std::uintptr_t low = base > below ? base - below : 0;
  const auto addr = reinterpret_cast<std::uintptr_t>(info->si_addr);
  const std::uintptr_t sp = faulting_sp(ucontext);
  return (addr >= low && addr < base) || (sp >= low && sp < base);
}

// Hand a fault we do not claim to whoever had the signal before us.
void chain_to_previous(int sig, siginfo_t* info, void* ucontext) noexcept {
  const struct sigaction& prev = sig == SIGBUS ? registry.previous_bus : registry.previous_segv;
  if ((prev.sa_flags & SA_SIGINFO) != 0 && prev.sa_sigaction != nullptr) {
    prev.sa_sigaction(sig, info, ucontext);
    return;
  }
  if ((prev.sa_flags & SA_SIGINFO) == 0 && prev.sa_handler != SIG_DFL &&
      prev.sa_handler != SIG_IGN) {
    prev.sa_handler(sig);
    return;
  }
  const bool sent_by_process = info->si_code <= 0;  // kill(), raise(), sigqueue()
  const bool ignored = (prev.sa_flags & SA_SIGINFO) == 0 && prev.sa_handler == SIG_IGN;
  if (sent_by_process && ignored) return;  // stays ignored, as before us
  // Restore the default (or ignore) action: a fault re-executes on return and
  // the kernel delivers it with that action, killing the process as usual. A
  // sent signal is re-raised; it is blocked until we return.
  ::sigaction(sig, &prev, nullptr);
  if (sent_by_process) ::raise(sig);
}

void on_fault(int sig, siginfo_t* info, void* ucontext) {
  const RunningFiberInfo* fiber = tls_running;
  if (fiber != nullptr && fiber->stack != nullptr && fiber->stack->base != nullptr &&
      info->si_code > 0 && is_overflow_fault(*fiber->stack, info, ucontext)) {
    report_overflow(fiber->fiber_id, fiber->name, fiber->stack->size, "");
  }
  chain_to_previous(sig, info, ucontext);
}

// Each thread's alternate signal stack, unmapped when the thread exits.
struct AltStack {
  void* memory = nullptr;
  std::size_t size = 0;
  ~AltStack() {
    if (memory == nullptr) return;
    stack_t current{};
    if (::sigaltstack(nullptr, &current) == 0 && current.ss_sp == memory) {
      stack_t off{};
      off.ss_flags = SS_DISABLE;
      ::sigaltstack(&off, nullptr);
    }
    ::munmap(memory, size);
  }
};
thread_local AltStack tls_alt_stack;

constexpr std::size_t kMinUsableAltStack = 16 * 1024;

}  // namespace

__attribute__((noinline)) void set_running_fiber(const RunningFiberInfo* info) noexcept {
  tls_running = info;
}

__attribute__((noinline)) const RunningFiberInfo* running_fiber() noexcept { return tls_running; }

void install_overflow_handler() {
  std::call_once(registry.once, [] {
    registry.page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    // Read the previous actions first, so that the handler never sees them
    // half-written once it is live.
    ::sigaction(SIGSEGV, nullptr, &registry.previous_segv);
    ::sigaction(SIGBUS, nullptr, &registry.previous_bus);
    struct sigaction action {};
    action.sa_sigaction = &on_fault;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    if (::sigaction(SIGSEGV, &action, nullptr) != 0 || ::sigaction(SIGBUS, &action, nullptr) != 0)
      throw std::system_error(errno, std::generic_category(), "weft: sigaction");
  });
}

void install_overflow_handler_for_thread() {
  install_overflow_handler();
  if (tls_alt_stack.memory != nullptr) return;
  stack_t current{};
  if (::sigaltstack(nullptr, &current) == 0 && (current.ss_flags & SS_DISABLE) == 0 &&
      current.ss_size >= kMinUsableAltStack) {
    return;  // someone (e.g. ASan) already gave this thread a usable one
  }
  const std::size_t page = registry.page;
  std::size_t size = std::max<std::size_t>(4 * static_cast<std::size_t>(SIGSTKSZ), 64 * 1024);
  size = (size + page - 1) / page * page;
  void* memory = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED)
    throw std::system_error(errno, std::generic_category(), "weft: mmap of a signal stack");
  stack_t alt{};
  alt.ss_sp = memory;
  alt.ss_size = size;
  if (::sigaltstack(&alt, nullptr) != 0) {
    const int err = errno;
    ::munmap(memory, size);
    throw std::system_error(err, std::generic_category(), "weft: sigaltstack");
  }
  tls_alt_stack.memory = memory;
  tls_alt_stack.size = size;
}

void report_canary_overflow(std::uint64_t fiber_id, const char* name, std::size_t size) {
  report_overflow(fiber_id, name, size, " (detected by canary)");
}

}  // namespace weft::detail
