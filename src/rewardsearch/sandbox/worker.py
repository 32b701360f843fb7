"""Sandbox worker: the processes that run one candidate reward for `runner.py`, and the OS isolation around them.

Started by the runner as `python -I -S worker.py PARENT_PID` with an empty environment, a private temporary
cwd and the parent's rlimits (address space, file size, open files, core, total CPU) already set. It imports
only the standard library and `isolation.py` beside it (never rewardsearch), so it runs without site-packages.

Processes:
- **W**, the started process, trusted: preloads the allowlisted modules (after isolation the stdlib may be
  unreadable), reads the init message, unshares the namespaces (at `strict`), forks Z and reports Z's pid,
  then only reaps: it is a child subreaper, so nothing below it is left as a zombie for the machine's init,
  and it exits with Z's status once nothing is left.
- **Z**, the zygote (pid 1 of the sandbox's pid namespace at `strict`), trusted: applies the isolation of the
  level (isolation.py: private /proc, private uid, Landlock, seccomp), compiles the source once, and for the
  load check and for every call forks a child. **Z never runs candidate code**, so nothing a call does can
  reach the next call: each child starts from Z's pristine memory.
- **C**, one per call, forked from Z ahead of time as a spare (so the fork and the module body are paid
  between calls): closes every descriptor but its two pipes to Z, sets its CPU limit, adds the per-call
  seccomp filter (no processes, threads or signals), executes the module body with restricted builtins and
  a guarded import, then waits for its one message, calls the entrypoint, validates the result, writes one
  reply line and exits. Z kills C (SIGKILL) at the call deadline, reads at most MAX_REPLY_BYTES from it,
  turns a death into a reply ("killed by signal 11 (SIGSEGV)"), reaps it and forks the next spare.

Protocol (stdin in, the saved original stdout out; one line per message):
    -> {"source", "entrypoint", "nonce", "score_bound", "call_timeout_s", "cpu_s", "plan", "guards"}
    <- {"nonce", "zygote_pid"}                      (from W; absent when the namespaces cannot be created)
    <- {"nonce", "ok": true, "level", "applied": [...]} | {"nonce", "ok": false, "kind", "error"}
    -> NONCE SPACE {"prompts": [...], "completions": [...], "kwargs": {...}}
    <- {"nonce", "ok": true, "scores": [float | null, ...]} | {"nonce", "ok": false, "kind", "error"}
The worker exits when stdin closes (Z kills its spare child first, W reaps everything).
`python worker.py --probe` instead tries every level in throw-away children and prints which ones this
machine supports (one JSON object).

What is guaranteed here:
- User prints cannot corrupt the protocol: fds 0, 1 and 2 (and `sys.std*`) point at /dev/null and the
  protocol uses private duplicates of the original pipes, which C closes before candidate code runs.
- Every message gets exactly one reply from Z (error, timeout, crash and output-size replies included),
  unless Z itself dies; the parent then sees EOF or its own deadline pass.
- Inputs are decoded fresh in every C, so in-place mutation by the code never reaches the caller or the
  next call; module-level state is rebuilt for every call.
- Results are validated in C (one per completion, each None or an exact bool/int/float/Fraction/Decimal,
  finite, |x| <= score_bound); the parent validates again.
- With `guards` (the default) the code sees restricted builtins (no open/eval/exec/compile/getattr/...) and an
  `__import__` that admits only `ALLOWED_MODULES`, as read-only views without private names or `HIDDEN_ATTRS`.

What is NOT guaranteed here:
- Python-level isolation. Code that gets past the static check can walk object internals
  (`().__class__.__base__.__subclasses__()`) and reach real modules; the guards are defense in depth. The
  boundary is the OS layer (isolation.py) plus the parent's deadline and limits; at level `process` there is
  no OS layer, which is why that level needs an explicit opt-in.
- Trustworthy replies: C runs candidate code and could write anything to its pipe; the parent re-validates.
- Stable `hash()` of str across workers (each worker has its own hash seed; the probe suite compares two).
"""

import builtins
import gc
import json
import math
import os
import resource
import secrets
import select
import signal
import sys
import time
import traceback
import types
from decimal import Decimal
from fractions import Fraction

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import isolation  # noqa: E402  (beside this file; -I keeps the script's directory off sys.path)

del sys.path[0]

# Keep equal to rewardsearch.sandbox.static.ALLOWED_MODULES / FORBIDDEN_ATTRS (a test checks it): this file
# may not import rewardsearch.
ALLOWED_MODULES = (
    "__future__", "re", "math", "statistics", "string", "collections", "itertools", "functools", "operator",
    "fractions", "decimal", "unicodedata", "difflib", "json", "typing", "dataclasses", "enum", "bisect",
    "heapq",
)  # fmt: skip
HIDDEN_ATTRS = frozenset({
    "attrgetter", "methodcaller", "get_type_hints", "ForwardRef", "singledispatch", "singledispatchmethod",
    "Formatter", "get_field",
})  # fmt: skip
# Imported before isolation: once the worker runs as its own uid under Landlock, the stdlib may be unreadable.
PRELOAD = ALLOWED_MODULES + (
    "collections.abc", "json.decoder", "json.encoder", "json.scanner", "encodings.utf_8", "encodings.ascii",
    "encodings.latin_1", "encodings.utf_16", "encodings.utf_32", "encodings.utf_8_sig", "encodings.cp1252",
    "encodings.unicode_escape", "encodings.raw_unicode_escape", "encodings.idna", "encodings.punycode",
)  # fmt: skip

# Testing aid (guards off): what an attacker who escaped the Python guards would import first. Preloaded so
# that the adversarial tests meet the OS boundary with capable code, not with an unreadable stdlib.
ATTACKER_PRELOAD = (
    "socket", "subprocess", "threading", "random", "time", "shutil", "pathlib", "http.client", "importlib",
)  # fmt: skip

SAFE_BUILTINS = (
    "abs", "all", "any", "ascii", "bin", "bool", "bytearray", "bytes", "callable", "chr", "classmethod",
    "complex", "dict", "divmod", "enumerate", "filter", "float", "format", "frozenset", "hasattr", "hash",
    "hex", "id", "int", "isinstance", "issubclass", "iter", "len", "list", "map", "max", "min", "next",
    "object", "oct", "ord", "pow", "print", "property", "range", "repr", "reversed", "round", "set", "slice",
    "sorted", "staticmethod", "str", "sum", "super", "tuple", "type", "zip", "__build_class__",
    "NotImplemented", "Ellipsis",
)  # fmt: skip
REWARD_FILENAME = "<reward>"
MODULE_NAME = "reward_candidate"
MAX_ERROR_CHARS = 2000
MAX_REPLY_BYTES = 4 * 1024 * 1024  # keep equal to runner.MAX_REPLY_BYTES
FD_CEILING = 4096  # above any RLIMIT_NOFILE the parent sets


# -- what candidate code sees --------------------------------------------------------------------------------
def module_allowed(name: str) -> bool:
    parts = name.split(".")
    return parts[0] in ALLOWED_MODULES and not any(p.startswith("_") for p in parts[1:])


_views: dict = {}


def module_view(module: types.ModuleType) -> types.ModuleType:
    """A separate module holding the public, non-hidden attributes; allowed submodules become views too.

    Writes by the code land on the view (in its own call child), never on the real module.
    """
    view = _views.get(module.__name__)
    if view is None:
        view = _views[module.__name__] = types.ModuleType(module.__name__)
    for key, value in vars(module).items():
        if key.startswith("_") or key in HIDDEN_ATTRS or key in view.__dict__:
            continue
        if isinstance(value, types.ModuleType):
            if not module_allowed(value.__name__):
                continue
            value = module_view(value)
        view.__dict__[key] = value
    return view


_real_import = builtins.__import__


def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):  # __import__'s signature
    if level != 0:
        raise ImportError("relative imports are not allowed")
    if not module_allowed(name):
        raise ImportError(f"import of {name!r} is not allowed (allowed: {', '.join(ALLOWED_MODULES)})")
    for item in fromlist or ():
        if item.startswith("_") or item in HIDDEN_ATTRS:
            raise ImportError(f"'from {name} import {item}' is not allowed")
    module = _real_import(name, None, None, fromlist, 0)
    if fromlist:
        for item in fromlist:
            value = getattr(module, item, None)
            if isinstance(value, types.ModuleType) and not module_allowed(value.__name__):
                raise ImportError(f"'from {name} import {item}' is not allowed ({item} is a module)")
    return module_view(module)


def safe_builtins() -> dict:
    table = {name: getattr(builtins, name) for name in SAFE_BUILTINS}
    for name, value in vars(builtins).items():  # every exception class, so `except ValueError` works
        if isinstance(value, type) and issubclass(value, BaseException):
            table[name] = value
    table["__import__"] = guarded_import
    return table


# -- messages ------------------------------------------------------------------------------------------------
def describe(exc: BaseException) -> str:
    """'ValueError: bad thing (reward line 12)', cut to MAX_ERROR_CHARS; never raises, opens no files."""
    try:
        name = type(exc).__name__
        try:
            text = str(exc)
        except BaseException:  # a user exception class with a broken __str__
            text = "<unprintable>"
        lines = [ln for frame, ln in traceback.walk_tb(exc.__traceback__)
                 if frame.f_code.co_filename == REWARD_FILENAME]  # fmt: skip
        where = f" (reward line {lines[-1]})" if lines else ""
        if not where and isinstance(exc, SyntaxError) and exc.filename == REWARD_FILENAME and exc.lineno:
            where = f" (reward line {exc.lineno})"
        message = f"{name}: {text}{where}" if text else f"{name}{where}"
        return message[:MAX_ERROR_CHARS]
    except BaseException:
        return "error (could not describe the exception)"


def to_score(value: object, index: int, bound: float) -> float | None:
    if value is None:
        return None
    if type(value) not in (bool, int, float, Fraction, Decimal):  # exact types: no user __float__ runs here
        raise TypeError(f"score {index} has type {type(value).__name__}; expected float, int, bool or None")
    score = float(value)  # may raise OverflowError for a huge int
    if not math.isfinite(score):
        raise ValueError(f"score {index} is {score}; scores must be finite")
    if abs(score) > bound:
        raise ValueError(f"score {index} is {score}; |score| must be <= {bound}")
    return score


def validate(result: object, n: int, bound: float) -> list:
    if type(result) not in (list, tuple):
        raise TypeError(f"the reward returned {type(result).__name__}; expected a list of {n} scores")
    if len(result) != n:
        raise ValueError(f"the reward returned {len(result)} scores for {n} completions")
    return [to_score(value, i, bound) for i, value in enumerate(result)]


def encode(reply: dict) -> bytes:
    try:
        return (json.dumps(reply, allow_nan=False) + "\n").encode()
    except BaseException:
        nonce = reply.get("nonce")
        safe = nonce if isinstance(nonce, str) and nonce.isalnum() else ""
        # hand-written, in case json itself is what broke (C shares its interpreter with candidate code)
        return ('{"nonce": "' + safe + '", "ok": false, "kind": "error", '
                '"error": "worker could not encode its reply"}\n').encode()  # fmt: skip


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# -- Z and C: one fresh child per call ------------------------------------------------------------------------
class _Child:
    """A forked call child as Z sees it: its pid, the pipe its message goes into, the pipe its reply comes from."""

    def __init__(self, pid: int, to_child: int, from_child: int) -> None:
        self.pid, self.to_child, self.from_child = pid, to_child, from_child


class Zygote:
    """Z's state, which every call child starts from and which candidate code never touches.

    Z keeps one spare child forked ahead of time: it has already restricted itself and executed the module
    body, and waits for exactly one message (`NONCE PAYLOAD`, then EOF; an empty payload is the load check).
    After each reply Z reaps that child and forks the next spare, so the fork and the module body are paid
    between calls rather than inside them, and no two calls ever share a process.
    """

    def __init__(self, init: dict, code: types.CodeType, call_filter: bytes | None) -> None:
        self.entrypoint = init["entrypoint"]
        self.bound = float(init["score_bound"])
        self.timeout = float(init["call_timeout_s"])
        self.cpu_s = int(init["cpu_s"])
        self.guards = bool(init.get("guards", True))
        self.code = code
        self.call_filter = call_filter
        self.pid = os.getpid()
        self.spare: _Child | None = None
        self.replied: int | None = None  # pid of the child that replied last, not yet reaped
        if self.guards:  # build the module views once; children inherit them copy-on-write
            for name in ALLOWED_MODULES:
                module_view(sys.modules[name])
        # Z's objects never change again: keep them out of the children's garbage collections, whose
        # refcount and header writes would otherwise copy most of Z's pages into every child.
        gc.freeze()

    # -- C's side ----------------------------------------------------------------------------------------------
    def load(self) -> object:
        """Execute the module body in a fresh module; return the entrypoint."""
        module = types.ModuleType(MODULE_NAME)
        module.__dict__["__builtins__"] = safe_builtins() if self.guards else builtins.__dict__
        sys.modules[MODULE_NAME] = module  # dataclasses/typing look classes' modules up here
        exec(self.code, module.__dict__)
        fn = module.__dict__.get(self.entrypoint)
        if not callable(fn):
            raise NameError(f"the source defines no function {self.entrypoint!r}")
        return fn

    def child(self, from_z: int, to_z: int) -> None:
        """C's whole life: restrict, load, wait for the one message, run, reply, exit. Never returns."""
        setup_error = fn = error = None
        try:
            os.closerange(3, min(from_z, to_z))  # the protocol pipes above all: the code talks only to Z
            os.closerange(min(from_z, to_z) + 1, max(from_z, to_z))
            os.closerange(max(from_z, to_z) + 1, FD_CEILING)
            isolation.die_with_parent(self.pid)
            resource.setrlimit(resource.RLIMIT_CPU, (self.cpu_s, self.cpu_s + 1))
            if self.call_filter is not None:
                isolation.install_filter(self.call_filter)
        except BaseException as exc:  # no candidate code runs in a child that could not restrict itself
            setup_error = f"call child setup failed: {describe(exc)}"
        if setup_error is None:
            try:
                fn = self.load()
            except BaseException as exc:  # reported once the message (and its nonce) is here
                error = describe(exc)
        chunks = []
        while chunk := os.read(from_z, 1 << 20):
            chunks.append(chunk)
        nonce_bytes, _, payload = b"".join(chunks).partition(b" ")
        nonce = nonce_bytes.decode("ascii", "replace")
        if setup_error is not None:
            reply = {"nonce": nonce, "ok": False, "kind": "isolation", "error": setup_error}
        elif error is not None:
            prefix = "while loading the module: " if payload else ""
            reply = {"nonce": nonce, "ok": False, "kind": "load", "error": prefix + error}
        elif not payload:
            reply = {"nonce": nonce, "ok": True}
        else:
            reply = self.call(fn, nonce, payload)
        try:
            write_all(to_z, encode(reply))
        finally:
            os._exit(0)  # no atexit, no finalizers of candidate objects

    def call(self, fn: object, nonce: str, payload: bytes) -> dict:
        try:
            message = json.loads(payload)
            n = len(message["completions"])  # before the call: the code may mutate its copy
            result = fn(prompts=message["prompts"], completions=message["completions"], **message["kwargs"])
            return {"nonce": nonce, "ok": True, "scores": validate(result, n, self.bound)}
        except BaseException as exc:  # SystemExit, KeyboardInterrupt and all: the reply must still go out
            return {"nonce": nonce, "ok": False, "kind": "error", "error": describe(exc)}

    # -- Z's side ----------------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Reap the last child, then fork the spare if there is none (between calls)."""
        if self.replied is not None:
            # It exits right after replying; reaping it first keeps at most one child alive (RLIMIT_NPROC=2).
            # One that replies and then lingers is killed at a deadline like any other.
            self._reap_by(self.replied, time.monotonic() + self.timeout)
            self.replied = None
        if self.spare is not None:
            return
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            for fd in (to_r, to_w, from_r, from_w):
                os.close(fd)
            raise
        if pid == 0:
            os.close(to_w)
            os.close(from_r)
            self.child(to_r, from_w)
        os.close(to_r)
        os.close(from_w)
        os.set_blocking(to_w, False)
        self.spare = _Child(pid, to_w, from_r)

    def run(self, nonce: str, payload: bytes) -> bytes:
        """Hand one message to the spare child and return the reply line for the parent."""
        try:
            self.prepare()
        except OSError as exc:
            return encode({"nonce": nonce, "ok": False, "kind": "crash", "error": f"could not fork: {exc}"})
        child, self.spare = self.spare, None
        assert child is not None
        try:
            return self._exchange(child, nonce, nonce.encode() + b" " + payload)
        finally:
            os.close(child.from_child)
            if child.to_child >= 0:
                os.close(child.to_child)

    def _exchange(self, child: _Child, nonce: str, message: bytes) -> bytes:
        deadline = time.monotonic() + self.timeout
        pending = memoryview(message)
        data = bytearray()
        while b"\n" not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._kill(child.pid)
                return encode({"nonce": nonce, "ok": False, "kind": "timeout",
                               "error": f"no reply within {self.timeout:g}s (call child killed)"})  # fmt: skip
            writers = [child.to_child] if child.to_child >= 0 else []
            readable, writable, _ = select.select([child.from_child], writers, [], remaining)
            if writable:
                try:
                    pending = pending[os.write(child.to_child, pending):]
                except BrokenPipeError:
                    pending = pending[:0]  # it stopped reading (died or closed): its reply says why
                if not pending:
                    os.close(child.to_child)  # EOF: the whole message is there
                    child.to_child = -1
            if readable:
                chunk = os.read(child.from_child, 1 << 16)
                if not chunk:
                    return self._ended_without_reply(child, nonce, deadline)
                data += chunk
                if len(data) > MAX_REPLY_BYTES:
                    self._kill(child.pid)
                    return encode({"nonce": nonce, "ok": False, "kind": "output",
                                   "error": f"reply larger than {MAX_REPLY_BYTES} bytes"})  # fmt: skip
        self.replied = child.pid  # reaped by the next prepare(), after this reply is on its way
        return bytes(data).partition(b"\n")[0] + b"\n"

    def _ended_without_reply(self, child: _Child, nonce: str, deadline: float) -> bytes:
        status = self._reap_by(child.pid, deadline)
        code = os.waitstatus_to_exitcode(status) if status is not None else None
        if code is None:
            what, kind = "closed its reply pipe and was killed at the deadline", "timeout"
        elif code < 0:
            sig = -code
            name = signal.Signals(sig).name if sig in signal.valid_signals() else str(sig)
            kind = "timeout" if sig == signal.SIGXCPU else "crash"
            what = f"was killed by signal {sig} ({name})" + (": its CPU time limit" if kind == "timeout" else "")
        else:
            what, kind = f"exited with status {code} before replying", "crash"
        return encode({"nonce": nonce, "ok": False, "kind": kind, "error": f"call child {what}"})

    def _reap_by(self, pid: int, deadline: float) -> int | None:
        """waitpid with a deadline (SIGKILL at it); the wait status, or None if it had to be killed."""
        try:
            pidfd = os.pidfd_open(pid)  # readable when the process exits: no polling, no oversleeping
        except (AttributeError, OSError):
            pidfd = None  # kernel < 5.3
        try:
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    return status
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._kill(pid)
                    return None
                if pidfd is not None:
                    select.select([pidfd], [], [], remaining)
                else:
                    time.sleep(min(remaining, 0.0005))
        finally:
            if pidfd is not None:
                os.close(pidfd)

    def shutdown(self) -> None:
        """Kill and reap the spare and the last child, so that nothing outlives Z."""
        for pid in (self.spare.pid if self.spare else None, self.replied):
            if pid is not None:
                self._kill(pid)
        self.spare = self.replied = None

    @staticmethod
    def _kill(pid: int) -> None:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


# -- W and Z: setup ------------------------------------------------------------------------------------------
def take_protocol_fds() -> tuple[int, int]:
    """Private copies of stdin/stdout for the protocol; fds 0/1/2 and sys.std* go to /dev/null."""
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    # over fds 0-2 themselves, so that closing "everything else" in C keeps print() working
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", closefd=False)
    return proto_in, proto_out


def preload() -> None:
    for name in PRELOAD:
        __import__(name)


def stdlib_paths() -> list[str]:
    return [p for p in sys.path if p and os.path.exists(p)]


PR_SET_CHILD_SUBREAPER = 36


def fork_zygote(plan: dict, report, keep_fds: tuple[int, ...]) -> None:
    """In W: unshare the namespaces (at `strict`), fork Z, and return only in Z.

    W calls `report(z_pid)` (Z's pid as the parent sees it), releases Z, and then only reaps: it is a child
    subreaper, so call children orphaned by a dying Z are reparented to W rather than to the machine's init
    (which, in a container, may never reap them). W exits with Z's status once nothing is left to reap.
    Raises OSError in W (before the fork) when the namespaces cannot be created.
    """
    isolation.prctl(PR_SET_CHILD_SUBREAPER, 1)
    if plan.get("namespaces"):
        isolation.unshare_namespaces(user=bool(plan.get("userns")))
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(go_w)
        os.read(go_r, 1)  # wait until W has reported our pid: its line must precede ours
        os.close(go_r)
        return
    os.close(go_r)
    try:
        report(pid)
    finally:
        os.close(go_w)
    for fd in keep_fds:
        os.close(fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    code = 0
    while True:
        try:
            done, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(code)
        if done == pid:
            code = max(0, os.waitstatus_to_exitcode(status))


def isolate_zygote(plan: dict) -> list[str]:
    """In Z: apply the rest of `plan` (see isolation.py); the list of mechanisms applied. Raises OSError."""
    applied: list[str] = []
    parent = os.getppid()  # 0 inside a new pid namespace: W lives outside it
    if plan.get("namespaces"):
        isolation.private_proc()
        applied.append("namespaces(net,pid,mount,ipc,uts" + (",user)" if plan.get("userns") else ")"))
    if plan.get("uid") is not None:
        isolation.drop_to_uid(int(plan["uid"]))
        applied.append("uid")
    elif plan.get("userns"):
        isolation.drop_capabilities()
    isolation.set_dumpable(False)  # same-uid processes may not ptrace us or read our /proc/<pid>/mem
    isolation.die_with_parent(parent)  # after the uid change, which clears the parent-death signal
    if plan.get("nproc"):
        n = int(plan["nproc"])
        resource.setrlimit(resource.RLIMIT_NPROC, (n, n))
        applied.append(f"nproc={n}")
    if plan.get("landlock"):
        abi = isolation.landlock_read_only(stdlib_paths())
        applied.append(f"landlock(abi={abi})")
    if plan.get("seccomp"):
        isolation.install_filter(isolation.build_filter("zygote"))
        applied.append("seccomp")
    return applied


def serve(proto_in: int, proto_out: int) -> None:
    # W reads the init line; Z inherits this reader (and whatever it buffered) through the fork.
    reader = os.fdopen(proto_in, "rb")
    first = reader.readline()
    if not first:
        return
    init = json.loads(first)
    nonce = str(init.get("nonce", ""))
    plan = init.get("plan") or {}
    if not init.get("guards", True):
        for name in ATTACKER_PRELOAD:
            __import__(name)

    def isolation_failed(exc: BaseException) -> None:
        write_all(proto_out, encode({"nonce": nonce, "ok": False, "kind": "isolation",
                                     "error": f"sandbox level {plan.get('level')!r}: {describe(exc)}"}))  # fmt: skip

    try:
        fork_zygote(plan, lambda pid: write_all(proto_out, encode({"nonce": nonce, "zygote_pid": pid})),
                    (proto_in, proto_out))  # fmt: skip
    except BaseException as exc:
        isolation_failed(exc)
        return
    try:
        applied = isolate_zygote(plan)
        call_filter = isolation.build_filter("call") if plan.get("seccomp") else None
    except BaseException as exc:
        isolation_failed(exc)
        return
    try:
        code = compile(init["source"], REWARD_FILENAME, "exec", dont_inherit=True)
    except BaseException as exc:
        write_all(proto_out, encode({"nonce": nonce, "ok": False, "kind": "load", "error": describe(exc)}))
        return
    zygote = Zygote(init, code, call_filter)
    reply = json.loads(zygote.run(nonce, b""))  # the load check: a child loads the module and replies
    if reply.get("ok") is True:
        reply.update(level=plan.get("level", "process"), applied=applied)
    write_all(proto_out, encode(reply))
    try:
        while reply.get("ok") is True:
            try:
                zygote.prepare()  # the next call's child, forked while the parent is busy elsewhere
            except OSError:
                pass  # run() tries again and reports it
            line = reader.readline()
            if not line:
                break
            nonce_bytes, _, payload = line.rstrip(b"\n").partition(b" ")
            write_all(proto_out, zygote.run(nonce_bytes.decode("ascii", "replace"), payload))
    finally:
        zygote.shutdown()


# -- detection -----------------------------------------------------------------------------------------------
def probe_level(plan: dict) -> str | None:
    """Apply `plan` in a throw-away child and check it holds; None if it works, else why not."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        message = "ok"
        try:
            fork_zygote(plan, lambda pid: None, (w,))
            isolate_zygote(plan)
            if plan.get("seccomp"):
                isolation.install_filter(isolation.build_filter("call"))
                socket = sys.modules["socket"]
                try:
                    socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    message = "seccomp did not deny socket()"
                except OSError:
                    pass
            if plan.get("landlock"):
                try:
                    with open("/proc/self/status"):  # read-only, so seccomp lets it through
                        message = "landlock did not deny a read outside the standard library"
                except OSError:
                    pass
        except BaseException as exc:
            message = describe(exc)
        os.write(w, message.encode()[:1000])
        os._exit(0)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 4096):
        chunks.append(chunk)
    os.close(r)
    os.waitpid(pid, 0)
    text = b"".join(chunks).decode(errors="replace")
    return None if text == "ok" else (text or "the probe child died")


def probe() -> dict:
    """What this machine allows, level by level (the plans mirror levels.plan_for)."""
    import socket  # noqa: F401  (before isolation makes the stdlib unreadable; probe_level uses sys.modules)

    root = os.geteuid() == 0
    abi = isolation.landlock_abi()
    result: dict = {"root": root, "landlock_abi": abi, "seccomp": isolation.seccomp_supported(),
                    "arch": os.uname().machine, "kernel": os.uname().release, "levels": {}}  # fmt: skip
    for level, mechanisms in isolation.LEVEL_MECHANISMS.items():
        if level == "process":
            result["levels"][level] = None
            continue
        if "seccomp" in mechanisms and not result["seccomp"]:
            result["levels"][level] = f"seccomp filters are implemented for x86_64 only (this is {result['arch']})"
            continue
        if "landlock" in mechanisms and abi < 1:
            result["levels"][level] = "Landlock is not available in this kernel"
            continue
        plan = {"level": level, "namespaces": "namespaces" in mechanisms, "userns": not root,
                "uid": (secrets.randbelow(1 << 20) + (1 << 24)) if root else None,
                "landlock": "landlock" in mechanisms, "seccomp": "seccomp" in mechanisms}  # fmt: skip
        result["levels"][level] = probe_level(plan)
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--probe":
        preload()
        print(json.dumps(probe()))
        return
    parent_pid = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    isolation.die_with_parent(parent_pid)
    proto_in, proto_out = take_protocol_fds()
    preload()
    serve(proto_in, proto_out)


if __name__ == "__main__":
    main()
