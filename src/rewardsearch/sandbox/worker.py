"""Sandbox worker: a child interpreter that loads one candidate reward and scores batches for its parent.

Run by `sandbox/runner.py` as `python -I -S worker.py PARENT_PID` with an empty environment, a private
temporary cwd and resource limits the parent applies before sending any code. It imports only the standard
library (never rewardsearch), so it runs without site-packages.

Protocol (one JSON object per line; stdin in, the saved original stdout out):
    -> {"source": str, "entrypoint": str, "nonce": str, "score_bound": float}
    <- {"nonce": str, "ok": true} | {"nonce": str, "ok": false, "error": "SyntaxError: ... (reward line 3)"}
    -> {"nonce": str, "prompts": [...], "completions": [...], "kwargs": {...}}
    <- {"nonce": str, "ok": true, "scores": [float | null, ...]} | {"nonce": str, "ok": false, "error": str}
The worker exits when stdin closes.

What is guaranteed here:
- User prints cannot corrupt the protocol: before any user code runs, fds 0, 1 and 2 (and `sys.std*`) point at
  /dev/null and the protocol uses private duplicates of the original pipes.
- Every message gets a reply, including when the code raises `SystemExit`, `KeyboardInterrupt` or any other
  `BaseException` (unless the process is killed: the parent then sees EOF or its deadline pass).
- Inputs are decoded fresh from JSON for every call, so in-place mutation by the code never reaches the
  caller.
- Results are validated: a list/tuple with one entry per completion, each None or an exact bool/int/float (or
  Fraction/Decimal), converted to a finite float with |x| <= score_bound.
- The code runs with a restricted `__builtins__` (no open/eval/exec/compile/getattr/...), and its `__import__`
  admits only `ALLOWED_MODULES`, handing out read-only views that omit private names, modules outside the
  allowlist and `HIDDEN_ATTRS`.
- The worker dies with its parent (PR_SET_PDEATHSIG=SIGKILL).

What is NOT guaranteed here:
- Python-level isolation. Code that gets past the static check can walk object internals
  (`().__class__.__base__.__subclasses__()`) and reach real modules; restricted builtins are defense in depth,
  not a boundary. Containment is the process: empty environment, rlimits, private cwd, deadline and kill by
  the parent, plus the OS-level layers (namespaces, seccomp, landlock) that harden this process later.
- Trustworthy replies. The code shares this interpreter and could tamper with it; the parent re-validates
  every reply (nonce, length, finiteness, bound) and treats anything malformed as a failed call.
- Time and memory bounds: those are enforced from outside (parent deadline + SIGKILL, RLIMIT_AS).
"""

import builtins
import json
import math
import os
import sys
import traceback
import types
from decimal import Decimal
from fractions import Fraction

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
PR_SET_PDEATHSIG = 1
SIGKILL = 9


# -- process setup -------------------------------------------------------------------------------------------
def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGKILL us when the parent goes; exit if it is already gone (reparented)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the parent's close()/__del__ still kills us
    if parent_pid and os.getppid() != parent_pid:
        os._exit(0)


def take_protocol_fds() -> tuple[int, int]:
    """Private copies of stdin/stdout for the protocol; fds 0/1/2 and sys.std* go to /dev/null."""
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    sink = open(os.devnull, "w")  # lives as long as the process
    sys.stdout = sys.stderr = sink
    sys.stdin = open(os.devnull)
    return proto_in, proto_out


# -- what user code sees -------------------------------------------------------------------------------------
def module_allowed(name: str) -> bool:
    parts = name.split(".")
    return parts[0] in ALLOWED_MODULES and not any(p.startswith("_") for p in parts[1:])


_views: dict[str, types.ModuleType] = {}


def module_view(module: types.ModuleType) -> types.ModuleType:
    """A separate module holding the public, non-hidden attributes; allowed submodules become views too.

    Writes by the code land on the view, so it cannot monkeypatch the real module's namespace.
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
    """'ValueError: bad thing (reward line 12)', cut to MAX_ERROR_CHARS; never raises."""
    try:
        name = type(exc).__name__
        try:
            text = str(exc)
        except BaseException:  # a user exception class with a broken __str__
            text = "<unprintable>"
        where = ""
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == REWARD_FILENAME]
        if frames:
            where = f" (reward line {frames[-1].lineno})"
        elif isinstance(exc, SyntaxError) and exc.filename == REWARD_FILENAME and exc.lineno:
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
        # hand-written, in case json itself is what broke (the code shares this interpreter)
        return (
            '{"nonce": "' + safe + '", "ok": false, "error": "worker could not encode its reply"}\n'
        ).encode()


def send(fd: int, reply: dict) -> None:
    data = memoryview(encode(reply))
    while data:
        written = os.write(fd, data)
        data = data[written:]


# -- the loop ------------------------------------------------------------------------------------------------
def load(message: dict) -> object:
    """Exec the source in a fresh module with restricted builtins; return the entrypoint."""
    code = compile(message["source"], REWARD_FILENAME, "exec", dont_inherit=True)
    module = types.ModuleType(MODULE_NAME)
    module.__dict__["__builtins__"] = safe_builtins()
    sys.modules[MODULE_NAME] = module  # dataclasses/typing look classes' modules up here
    exec(code, module.__dict__)
    fn = module.__dict__.get(message["entrypoint"])
    if not callable(fn):
        raise NameError(f"the source defines no function {message['entrypoint']!r}")
    return fn


def serve(proto_in: int, proto_out: int) -> None:
    reader = os.fdopen(proto_in, "rb")
    first = reader.readline()
    if not first:
        return
    init = json.loads(first)
    nonce = init.get("nonce")
    bound = float(init.get("score_bound", 100.0))
    try:
        fn = load(init)
    except BaseException as exc:
        send(proto_out, {"nonce": nonce, "ok": False, "error": describe(exc)})
        return
    send(proto_out, {"nonce": nonce, "ok": True})
    while True:
        line = reader.readline()
        if not line:
            return
        nonce = None
        try:
            message = json.loads(line)
            nonce = message["nonce"]
            n = len(message["completions"])  # before the call: the code may mutate its (private) copy
            result = fn(prompts=message["prompts"], completions=message["completions"], **message["kwargs"])
            reply = {"nonce": nonce, "ok": True, "scores": validate(result, n, bound)}
        except BaseException as exc:  # SystemExit, KeyboardInterrupt and all: the reply must still go out
            reply = {"nonce": nonce, "ok": False, "error": describe(exc)}
        send(proto_out, reply)


def main() -> None:
    parent_pid = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    die_with_parent(parent_pid)
    proto_in, proto_out = take_protocol_fds()
    serve(proto_in, proto_out)


if __name__ == "__main__":
    main()
