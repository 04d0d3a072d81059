# weft's gdb extension: list the fibers of every weft runtime in the process
# and print the backtrace of a suspended one, in a live process or a core file.
#
#   (gdb) source tools/gdb/weft.py
#   (gdb) info weft-fibers
#   (gdb) weft-bt 2            # fiber #2; or a fiber name: weft-bt sleeper
#
# Only memory is read: no function of the process is called, so both commands
# work on a core file. The root is the global weft::detail::debug_runtimes
# (src/runtime/debug_registry.hpp): a list of the live Schedulers. From each
# scheduler the script walks roots_ (roots and daemons) and then every fiber's
# children_, which is the whole fiber tree: a fiber stays linked to its parent
# until it has ended, and a parent ends after its children. Field names are
# those of src/fiber/fiber_control.hpp and src/scheduler/scheduler.hpp; weft
# must be built with debug info (-g).
#
# weft-bt unwinds from the context Boost.Context saved when the fiber switched
# out (FiberControl::context_.ctx.fctx). It installs a gdb Python unwinder
# that, while the command runs, says the caller of the selected thread's
# innermost frame is the fiber's saved frame; gdb's own unwinder then walks
# the fiber's stack, and the script prints frames 1.. renumbered from 0. No
# register is written, which is what makes it work on a core file (folly's
# fibers/scripts/gdb.py sets $rsp/$rip instead, which needs a live process).
#
# Limits: x86-64 is tested; aarch64 follows Boost's jump_arm64_aapcs_elf_gas.S
# layout and is untested. A running fiber has no saved context: switch to its
# worker's thread and use `bt`. A process stopped in the middle of a context
# switch or of a runtime's construction may show a stale context or a torn list.

import re
import struct

import gdb
import gdb.types
from gdb.unwinder import Unwinder

REGISTRY = "weft::detail::debug_runtimes"
MAX_FIBERS = 1000000  # a torn or cyclic list ends the walk here
# The first function on every fiber stack (src/context/context.cpp); the
# frames below it belong to Boost's entry stub and mean nothing.
_ENTRY = "(anonymous namespace)::trampoline"

# The saved frame of a suspended Boost.Context fcontext_t (Boost 1.81):
# jump_fcontext pushes the callee-saved registers below the return address
# and hands out the stack pointer as the fcontext_t. Checked against
# `disassemble jump_fcontext` in libboost_context.so.1.81.0 (x86-64):
#   0x00 mxcsr, 0x04 x87 control word, 0x08 unused,
#   0x10 r12, 0x18 r13, 0x20 r14, 0x28 r15, 0x30 rbx, 0x38 rbp,
#   0x40 return address; the caller's rsp after the return is fctx + 0x48.
X86_64 = {
    "pc": "rip",
    "sp": "rsp",
    "size": 0x48,
    "slots": {"r12": 0x10, "r13": 0x18, "r14": 0x20, "r15": 0x28, "rbx": 0x30, "rbp": 0x38},
    "pc_slot": 0x40,
    # Instructions of jump_fcontext that fix the layout above.
    "check": [r"lea\s+-0x40\(%rsp\),%rsp", r"mov\s+%r12,0x10\(%rsp\)", r"mov\s+%rbp,0x38\(%rsp\)"],
}
# aarch64 (jump_arm64_aapcs_elf_gas.S): d8-d15 at 0x00-0x38, x19-x28 at
# 0x40-0x88, fp (x29) and lr (x30) at 0x90/0x98, the resume pc at 0xa0;
# sp after the switch is fctx + 0xb0. Untested.
AARCH64 = {
    "pc": "pc",
    "sp": "sp",
    "size": 0xB0,
    "slots": dict(
        [("x%d" % (19 + i), 0x40 + 8 * i) for i in range(10)] + [("x29", 0x90), ("x30", 0x98)]
    ),
    "pc_slot": 0xA0,
    "check": [r"sub\s+sp, sp, #0xb0", r"stp\s+x29, x30, \[sp, #144\]|stp\s+x29, x30, \[sp, #0x90\]"],
}


class WeftError(gdb.GdbError):
    pass


# --- reading values -----------------------------------------------------------


def _data_fields(t):
    return [f for f in t.fields() if hasattr(f, "bitpos")]  # static members have no bitpos


def _scalar(v):
    """The value inside a std::atomic (libstdc++ or libc++), or v itself."""
    while v.type.strip_typedefs().code == gdb.TYPE_CODE_STRUCT:
        fields = _data_fields(v.type.strip_typedefs())
        if not fields:
            break
        v = v[fields[0]]
    return v


def _string(v):
    """A std::string's text (libstdc++ layout; else gdb's own formatting)."""
    try:
        n = int(v["_M_string_length"])
        return v["_M_dataplus"]["_M_p"].string(length=min(n, 256))
    except gdb.error:
        return v.format_string(raw=False).strip('"')


def _c_string(p):
    if int(p) == 0:
        return ""
    try:
        return p.string(length=-1)[:200]
    except gdb.error:
        return "<unreadable 0x%x>" % int(p)


_STATE_NAMES = {}


def _enum_name(v):
    t = v.type.strip_typedefs()
    names = _STATE_NAMES.get(t.name)
    if names is None:
        names = {int(val): name.split("::")[-1] for name, val in gdb.types.make_enum_dict(t).items()}
        _STATE_NAMES[t.name] = names
    return names.get(int(v), str(int(v)))


# --- the fiber tree -----------------------------------------------------------


def _field_names(t):
    return {f.name for f in t.strip_typedefs().fields()}


def _site(loc):
    """file:line of a std::source_location, or of one in a std::atomic
    (libstdc++: a pointer, _M_impl, to the file, function, line, column)."""
    try:
        while "_M_impl" not in _field_names(loc.type):
            loc = loc[_data_fields(loc.type.strip_typedefs())[0]]
        impl = loc["_M_impl"]
        if int(impl) == 0:
            return ""
        impl = impl.dereference()
        path = _c_string(impl["_M_file_name"])
        return "%s:%d" % (path.rsplit("/", 1)[-1], int(impl["_M_line"]))
    except (gdb.error, IndexError):
        return ""


def _member(addr, struct_type, name):
    """Member `name` of the struct_type object at addr, read on its own.
    FiberCore is polymorphic: loading a whole one makes gdb look up the RTTI
    of its dynamic type (a FiberTask of a lambda, which has none it can find)
    and warn once per fiber."""
    field = next(f for f in struct_type.fields() if f.name == name)
    return gdb.Value(addr + field.bitpos // 8).cast(field.type.pointer()).dereference()


def _core_address(control):
    """The address and type of a FiberControl's FiberCore: a `core_` reference
    in older builds; since issue 15 the FiberControl lives in FiberCore::control_."""
    fields = control.type.strip_typedefs().fields()
    field = next((f for f in fields if f.name == "core_"), None)
    if field is not None:
        core_type = field.type.strip_typedefs().target()
        slot = int(control.address) + field.bitpos // 8  # a reference is stored as a pointer
        return int(gdb.Value(slot).cast(core_type.pointer().pointer()).dereference()), core_type
    core_type = gdb.lookup_type("weft::detail::FiberCore")
    storage = next(f for f in core_type.fields() if f.name == "control_")
    return int(control.address) - storage.bitpos // 8, core_type


def _fiber_id(control):
    addr, core_type = _core_address(control)
    return int(_member(addr, core_type, "id_")["value_"])


class Fiber:
    """What the commands show of one FiberControl."""

    def __init__(self, control, depth, runtime):
        self.control = control  # gdb.Value, a FiberControl
        self.depth = depth
        self.runtime = runtime
        self.id = _fiber_id(control)
        core, core_type = _core_address(control)
        self.flags = int(_scalar(_member(core, core_type, "interrupt_flags_")))
        parent = control["parent_"]
        self.parent = 0 if int(parent) == 0 else _fiber_id(parent.dereference())
        fields = _field_names(control.type)
        # Since issue 15 the name and the interruptors are in the FiberExtras
        # side allocation (extras_, nullptr until first use).
        extras = None
        if "extras_" in fields:
            p = _scalar(control["extras_"])
            extras = None if int(p) == 0 else p.dereference()
            self.name = "" if extras is None else _string(extras["name"])
        else:
            self.name = _string(control["name_"])
        self.state = _enum_name(_scalar(control["run_state_"]))
        worker = control["worker_"]
        self.worker = None if int(worker) == 0 else int(worker.dereference()["index_"])
        self.masked = not bool(control["interruptible_"])
        self.started = bool(control["started_"])
        # Fields read when this build has them (the wait's object, the call
        # site, finalizing, held Mutexes came with issue 14's dumps).
        what = control["wait_what_" if "wait_what_" in fields else "blocked_on_"]
        self.blocked_on = _c_string(_scalar(what))
        self.finalizing = "finalizing_" in fields and bool(_scalar(control["finalizing_"]))
        self.object = int(_scalar(control["wait_object_"])) if "wait_object_" in fields else 0
        self.held = []
        held = None
        if "extras_" in fields:  # issue 15: in the side allocation, when made
            held = None if extras is None else extras["held"]
        elif "held_" in fields:
            held = control["held_"]
        if held is not None:
            lo, hi = held.type.strip_typedefs().range()
            self.held = [a for a in (int(_scalar(held[i])) for i in range(lo, hi + 1)) if a]
        self.interruptors = []
        if self.flags & 3:  # who asked (a std::vector<FiberId>, libstdc++ layout)
            try:
                if "extras_" in fields:
                    v = extras["interruptors"]["_M_impl"]
                else:
                    v = control["interruptors_"]["_M_impl"]
                begin, end = v["_M_start"], v["_M_finish"]
                n = min(int(end - begin), 8)
                self.interruptors = [int((begin + i).dereference()["value_"]) for i in range(n)]
            except gdb.error:
                pass
        self.site = ""
        if "site_" in _field_names(core_type):
            self.site = _site(_member(core, core_type, "site_"))

    def flag_text(self):
        out = []
        by = "(%s)" % ",".join("#%d" % i for i in self.interruptors) if self.interruptors else ""
        if self.flags & 2:
            out.append("interrupting" + by)
        elif self.flags & 1:
            out.append("interrupt-pending" + by)
        if self.finalizing:
            out.append("finalizing")
        if self.masked:
            out.append("masked")
        return ",".join(out)

    def wait_text(self, holders):
        """What it waits in and on, where, and who holds the Mutex it waits
        for (holders: {Mutex address: fiber id}):
        `Mutex::lock on 0x... at server.cpp:42 held by #7`."""
        text = self.blocked_on
        if text and self.object:
            text += " on 0x%x" % self.object
        if self.site and self.state == "running":
            text += "last yield point at " + self.site
        elif self.site:
            text += (" at " if text else "at ") + self.site
        if text and self.object in holders:
            text += " held by #%d" % holders[self.object]
        for m in self.held:
            text += "%sholds Mutex 0x%x" % ("; " if text else "", m)
        return text

    def fctx(self):
        return int(self.control["context_"]["ctx"]["fctx"])


def _registry_head():
    try:
        return gdb.parse_and_eval(REGISTRY)
    except gdb.error as e:
        raise WeftError(
            "weft: cannot read %s (%s): is weft linked into this program, "
            "with debug info (-g)?" % (REGISTRY, e)
        )


def _tree_hook(head, old):
    """The hook of the root and children lists: one `tree_hook` since issue
    15, `old` (root_hook, sibling_hook_) before."""
    names = _field_names(head.type.strip_typedefs().target())
    return "tree_hook" if "tree_hook" in names else old


def _list(head, hook):
    """The elements of an IntrusiveList through their `hook` member."""
    p = head
    while int(p) != 0:
        yield p
        p = p.dereference()[hook]["next"]


def runtimes():
    """(address, Scheduler value) of every live runtime."""
    reg = _registry_head()
    seen = set()
    while int(reg) != 0 and int(reg) not in seen:
        seen.add(int(reg))
        entry = reg.dereference()
        sched = entry["scheduler"]
        yield int(sched), sched.dereference()
        reg = entry["next"]


def fibers():
    """Every live fiber of every runtime, depth first (parents before children)."""
    count = 0
    seen = set()
    for addr, sched in runtimes():
        stack = [(p, 0) for p in reversed(list(_list(sched["roots_"]["head_"], _tree_hook(sched["roots_"]["head_"], "root_hook"))))]
        while stack:
            p, depth = stack.pop()
            if int(p) in seen or count >= MAX_FIBERS:
                continue
            seen.add(int(p))
            count += 1
            control = p.dereference()
            try:
                fiber = Fiber(control, depth, addr)
                children = list(_list(control["children_"]["head_"], _tree_hook(control["children_"]["head_"], "sibling_hook_")))
            except gdb.MemoryError as e:
                gdb.write("weft: fiber at 0x%x unreadable (%s)\n" % (int(p), e))
                continue
            yield fiber
            stack.extend((c, depth + 1) for c in reversed(children))


def _worker_threads(sched):
    """{worker index: gdb thread number}, when gdb knows the threads' pthread_t."""
    by_handle = {}
    for t in gdb.selected_inferior().threads():
        try:
            by_handle[int.from_bytes(t.handle(), "little")] = t.num
        except (gdb.error, AttributeError, TypeError):
            pass
    out = {}
    workers = sched["workers_"]
    try:
        begin, end = workers["_M_impl"]["_M_start"], workers["_M_impl"]["_M_finish"]
    except gdb.error:
        return out
    # A unique_ptr with the default deleter is laid out as the raw pointer.
    worker_pp = gdb.lookup_type("weft::detail::Worker").pointer().pointer()
    for i in range(int(end - begin)):
        w = (begin + i).reinterpret_cast(worker_pp).dereference().dereference()
        try:
            pthread = int(w["thread_"]["_M_id"]["_M_thread"])
        except gdb.error:
            continue
        if pthread in by_handle:
            out[int(w["index_"])] = by_handle[pthread]
    return out


# --- unwinding a suspended fiber --------------------------------------------


def _arch():
    name = gdb.selected_inferior().architecture().name()
    if "x86-64" in name:
        return X86_64
    if "aarch64" in name:
        return AARCH64
    raise WeftError("weft-bt: architecture %s is not supported (x86-64; aarch64 untested)" % name)


def check_layout():
    """A warning when jump_fcontext does not save registers as this script
    expects (another Boost version or build), else ""."""
    arch = _arch()
    flavor = gdb.parameter("disassembly-flavor") if arch is X86_64 else None
    try:
        if flavor is not None:
            gdb.execute("set disassembly-flavor att", to_string=True)
        text = gdb.execute("x/16i jump_fcontext", to_string=True)
    except gdb.error:
        return "weft-bt: warning: jump_fcontext not found; assuming Boost 1.81's register layout\n"
    finally:
        if flavor is not None:
            gdb.execute("set disassembly-flavor " + flavor, to_string=True)
    if all(re.search(pat, text) for pat in arch["check"]):
        return ""
    return (
        "weft-bt: warning: jump_fcontext does not look like Boost 1.81's; "
        "the backtrace may be wrong\n"
    )


class _FrameId:
    def __init__(self, sp, pc):
        self.sp = sp
        self.pc = pc


class FiberUnwinder(Unwinder):
    """While `saved` is set, the caller of frame 0 is the fiber's saved frame."""

    def __init__(self):
        super().__init__("weft-fiber")
        self.saved = None  # {register name: int}

    def __call__(self, pending_frame):
        if self.saved is None or pending_frame.level() != 0:
            return None
        arch = self.saved["arch"]
        pc = pending_frame.read_register(arch["pc"])
        sp_type = pending_frame.read_register(arch["sp"]).type
        # Frame 0's id has stack address 1 (gdb takes 0 for "no address"),
        # so gdb's "previous frame inner to this frame" check never fires
        # for the fiber's frames, wherever its stack is mapped relative to
        # the thread's.
        # gdb 13 takes only gdb.Value attributes in a frame id.
        info = pending_frame.create_unwind_info(_FrameId(gdb.Value(1).cast(sp_type), pc))
        for reg, val in self.saved["regs"].items():
            t = pc.type if reg == arch["pc"] else sp_type
            info.add_saved_register(reg, gdb.Value(val).cast(t))
        return info


_UNWINDER = FiberUnwinder()
gdb.unwinder.register_unwinder(None, _UNWINDER, replace=True)


def _saved_registers(arch, fctx):
    mem = bytes(gdb.selected_inferior().read_memory(fctx, arch["size"]))
    word = lambda off: struct.unpack_from("<Q", mem, off)[0]
    regs = {reg: word(off) for reg, off in arch["slots"].items()}
    regs[arch["pc"]] = word(arch["pc_slot"])
    regs[arch["sp"]] = fctx + arch["size"]
    return regs


def fiber_backtrace(fiber, bt_args=""):
    """The text of `backtrace` on the fiber's stack, frames numbered from 0.
    A frame count in bt_args (N: innermost N, -N: outermost N) counts the
    fiber's own frames."""
    words = bt_args.split()
    counts = [w for w in words if re.fullmatch(r"-?\d+", w)]
    options = " ".join(w for w in words if w not in counts)
    arch = _arch()
    _UNWINDER.saved = {"arch": arch, "regs": _saved_registers(arch, fiber.fctx())}
    gdb.invalidate_cached_frames()
    try:
        text = gdb.execute("backtrace " + options, to_string=True)
    finally:
        _UNWINDER.saved = None
        gdb.invalidate_cached_frames()
    frames = []  # [lines] per fiber frame
    in_fiber = False  # past frame 0, which is the selected thread's
    for line in text.splitlines():
        m = re.match(r"#(\d+)\s+(.*)", line)
        if m is not None:
            if frames and _ENTRY in frames[-1][0]:
                break  # below the fiber's first frame: Boost's make_fcontext stub
            in_fiber = int(m.group(1)) >= 1
            if in_fiber:
                frames.append(["#%-3d%s" % (int(m.group(1)) - 1, m.group(2))])
        elif in_fiber:
            frames[-1].append(line)  # locals of `backtrace full`, "Backtrace stopped...", ...
    if counts:
        n = int(counts[0])
        frames = frames[:n] if n >= 0 else frames[n:]
    return "".join(line + "\n" for f in frames for line in f)


# --- commands -----------------------------------------------------------------


class InfoWeftFibers(gdb.Command):
    """List every live fiber of every weft runtime: info weft-fibers

Columns: id (indented under its parent), parent, state (runnable, running,
parking, parked, notified), worker (the one it runs or last ran on), name,
flags (interrupt-pending or interrupting, with the fibers that asked in
parentheses; finalizing; masked),
and what it waits in. Reads memory only, so it works on a core file."""

    HEADER = ("  id", "parent", "state", "worker", "name", "flags", "waiting in")

    def __init__(self):
        super().__init__("info weft-fibers", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        runtimes = []  # [(address, [row])] in walk order
        all_fibers = list(fibers())
        holders = {m: f.id for f in all_fibers for m in f.held}
        for f in all_fibers:
            if not runtimes or runtimes[-1][0] != f.runtime:
                runtimes.append((f.runtime, []))
            runtimes[-1][1].append(
                (
                    "  " + "  " * f.depth + "#%d" % f.id,
                    "#%d" % f.parent if f.parent else "-",
                    f.state,
                    "-" if f.worker is None else str(f.worker),
                    f.name or "-",
                    f.flag_text() or "-",
                    f.wait_text(holders) or "-",
                )
            )
        for addr, rows in runtimes:
            gdb.write("runtime 0x%x\n" % addr)
            widths = [max(len(r[i]) for r in rows + [self.HEADER]) for i in range(len(self.HEADER) - 1)]
            for r in [self.HEADER] + rows:
                gdb.write("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] + "\n")
        total = sum(len(rows) for _, rows in runtimes)
        gdb.write("%d fiber%s\n" % (total, "" if total == 1 else "s"))


class WeftBt(gdb.Command):
    """Backtrace of a suspended weft fiber: weft-bt ID|NAME|all [backtrace options]

ID is the fiber's number (2 or #2), NAME its fork name (the first live fiber
so named), `all` every suspended fiber in turn. Works for a parked fiber and
for a runnable one that ran before (both have a saved context); a running
fiber is on its worker's thread (use `thread N` and `bt`); one that never ran
has no stack yet. Extra words are passed to `backtrace` (`weft-bt 2 full`)."""

    def __init__(self):
        super().__init__("weft-bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        words = gdb.string_to_argv(arg)
        if not words:
            raise WeftError("usage: weft-bt ID|NAME|all [backtrace options]")
        options = " ".join(words[1:])
        gdb.write(check_layout())
        if words[0] != "all":
            error = self._show(self._find(words[0]), options)
            if error:
                raise WeftError(error)
            return
        for fiber in list(fibers()):
            error = self._show(fiber, options)
            if error:
                gdb.write(error + "\n\n")

    @staticmethod
    def _show(fiber, options):
        """Writes the fiber's backtrace; returns why it cannot, or ""."""
        if fiber.state in ("running", "parking", "notified"):
            return WeftBt._running_message(fiber)
        if not fiber.started or fiber.fctx() == 0:
            return "weft-bt: fiber #%d has not started: it has no stack yet" % fiber.id
        gdb.write("fiber #%d \"%s\" (%s)\n" % (fiber.id, fiber.name, fiber.state))
        gdb.write(fiber_backtrace(fiber, options) + "\n")
        return ""

    @staticmethod
    def _find(key):
        m = re.fullmatch(r"#?(\d+)", key)
        for f in fibers():
            if (m and f.id == int(m.group(1))) or (not m and f.name == key):
                return f
        raise WeftError("weft-bt: no live fiber %s" % key)

    @staticmethod
    def _running_message(fiber):
        """Where to look instead for a fiber that has no saved context."""
        thread = None
        for addr, sched in runtimes():
            if addr == fiber.runtime and fiber.worker is not None:
                thread = _worker_threads(sched).get(fiber.worker)
        if thread is not None:
            how = "`thread %d` then `bt`" % thread
        else:
            how = "its thread (weft/%s) and `bt`" % fiber.worker
        return "weft-bt: fiber #%d is %s on worker %s, so its stack is that thread's: use %s" % (
            fiber.id,
            fiber.state,
            fiber.worker,
            how,
        )


InfoWeftFibers()
WeftBt()
