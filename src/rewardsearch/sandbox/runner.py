"""`SandboxedReward`: a candidate reward run in its own sandboxed worker, usable as a TRL reward function.

    reward = SandboxedReward(spec, cfg.sandbox)        # nothing starts yet
    scores = reward(prompts=..., completions=..., answer=[...])   # list[float | None], one per completion
    reward.close()                                     # or `with SandboxedReward(...) as reward:`

What this side does (the worker's side is worker.py, the OS layer isolation.py, the level choice levels.py):
1. Starts `python -I -S worker.py` (`worker_command()`) with the environment `WORKER_ENV` only (no API keys,
   no tokens, no PYTHON* variables), a private `mkdtemp()` cwd, its own session (process group), and sends
   it the source and the isolation plan of the level `levels.resolve_level(cfg)` picked. The worker forks a
   zygote that compiles the code once and forks one child per call (about a millisecond), so no call can
   leave state for the next.
2. `apply_limits(pid, cfg)`: RLIMIT_AS (cfg.memory_mb), RLIMIT_FSIZE (1 MiB), RLIMIT_NOFILE (64),
   RLIMIT_CORE (0) and a total RLIMIT_CPU for the worker's lifetime, set with `prlimit` from this side right
   after spawn and before any code is sent; every worker process inherits them and none can raise them.
   (Not `preexec_fn`: Python documents it as unsafe in threaded parents, and the trainer has threads.) Each
   call child lowers its own CPU limit to about the call deadline.
3. Deadlines: the zygote SIGKILLs a call child at cfg.call_timeout_s and says so; this side waits
   PARENT_GRACE_S longer and then SIGKILLs the whole worker (process group; at level `strict`, the zygote is
   pid 1 of its pid namespace, so everything inside dies with it); the next call starts a fresh worker.
   Worker start + load has cfg.start_timeout_s.
4. Reply checks on this side: nonce (fresh per call), size (<= MAX_REPLY_BYTES), JSON without NaN/Infinity
   (never pickle), one score per completion, each None or a finite float with |x| <= cfg.score_bound; bools
   and ints become floats. The worker's own checks are not trusted.

Failure rule (DESIGN.md): a failed call (error, timeout, crash, bad result, nonce mismatch, unserializable
input) returns `[None] * len(completions)` for the whole batch, never per-item defaults; it increments
`failures` and sets `last_error` (and `last_failure_kind`). After `cfg.max_failures` failures the reward is
`quarantined`: the worker is stopped and every later call returns all-None at once, without running code.

What is guaranteed: candidate code never runs in this process; this process survives whatever the code does
(infinite loops, memory bombs, exit calls, crashes, garbage output); a call returns within about
call_timeout_s + PARENT_GRACE_S (plus start_timeout_s when a worker must be (re)started); the level a worker
runs at is the one `resolve_level` reported (a worker that cannot apply it fails its load check).
What is NOT guaranteed: that this runner runs the static check (that is `rewardsearch.sandbox.check_reward`'s
job); isolation beyond what the level provides (see isolation.py); stable scores across workers for code
that depends on `hash()` of str or on object addresses (each worker has its own hash seed and layout).
"""

from __future__ import annotations

import collections
import json
import logging
import math
import os
import resource
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from rewardsearch.config import SandboxConfig
from rewardsearch.rewards.spec import RewardSpec
from rewardsearch.sandbox import levels

WORKER_PATH = Path(__file__).with_name("worker.py")
WORKER_ENV: dict[str, str] = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
MAX_REPLY_BYTES = 4 * 1024 * 1024  # keep equal to worker.MAX_REPLY_BYTES
FSIZE_LIMIT_BYTES = 1024 * 1024
NOFILE_LIMIT = 64
WORKER_CPU_S = 3600  # total CPU of one worker's processes together is not limited; each one's is, by this
PARENT_GRACE_S = 1.0  # past the zygote's own deadline, before this side kills the whole worker
STOP_GRACE_S = 1.0  # for a worker to exit by itself (after EOF, or after its zygote was killed)
# Worker reply kinds this side knows; anything else is reported as "error".
_KINDS = frozenset({"load", "timeout", "crash", "error", "bad_result", "protocol", "input", "output", "isolation"})
STDERR_TAIL_BYTES = 2000
# TRL passes these to every reward: trainer objects, meaningless (and unserializable) in a worker.
TRAINER_KWARGS = frozenset({"trainer_state", "log_extra", "log_metric", "environments", "completion_ids"})
_LATENCY_WINDOW = 10_000  # latencies kept for the percentile stats
log = logging.getLogger("rewardsearch.sandbox")


class _CallFailed(Exception):
    """One failed call; `kind` is one of `_KINDS`."""

    def __init__(self, kind: str, message: str, kill: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.kill = kill  # the worker's state is unknown: stop it, the next call starts a fresh one


def worker_command() -> list[str]:
    # -I: ignore PYTHON* variables and user site, keep the script's dir off sys.path; -S: no site-packages.
    return [sys.executable, "-I", "-S", str(WORKER_PATH), str(os.getpid())]


def apply_limits(pid: int, cfg: SandboxConfig) -> None:
    """Resource limits of the worker, set from outside before it receives any code."""
    memory = cfg.memory_mb * 1024 * 1024
    for limit, value in (
        (resource.RLIMIT_AS, memory),
        (resource.RLIMIT_FSIZE, FSIZE_LIMIT_BYTES),
        (resource.RLIMIT_NOFILE, NOFILE_LIMIT),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_CPU, WORKER_CPU_S),
    ):
        resource.prlimit(pid, limit, (value, value))


def _encode_kwargs(kwargs: dict[str, Any]) -> tuple[str, list[str]]:
    """JSON object text of the forwardable kwargs, and the names dropped (trainer objects, unserializable)."""
    parts: list[str] = []
    dropped: list[str] = []
    for key, value in kwargs.items():
        if key in TRAINER_KWARGS or key in ("prompts", "completions"):
            continue
        try:
            parts.append(f"{json.dumps(key)}: {json.dumps(value)}")
        except (TypeError, ValueError, OverflowError, RecursionError):
            dropped.append(key)
    return "{" + ", ".join(parts) + "}", dropped


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


class _ZygoteHandle:
    """The worker's zygote, killable without a pid-reuse race where the kernel offers pidfds."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        try:
            self.fd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self.fd = None

    def kill(self) -> None:
        try:
            if self.fd is not None:
                signal.pidfd_send_signal(self.fd, signal.SIGKILL)
            else:
                os.kill(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, OSError):
            pass  # already gone

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _reject_constant(name: str) -> None:
    raise ValueError(f"non-finite number {name} in reply")


class SandboxedReward:
    """A TRL reward function that runs `spec`'s code in a worker process; see the module docstring.

    Attributes: `failures`, `timeouts`, `last_error` (str | None), `last_failure_kind`, `dropped_kwargs`
    (names never forwarded because they are not JSON-serializable), `env` (the worker's environment).
    Pickling or deep-copying gives a fresh, unstarted reward with zeroed counters (a worker process cannot be
    shared); forked children start their own worker instead of using the parent's.
    """

    def __init__(self, spec: RewardSpec, cfg: SandboxConfig, *, guards: bool = True) -> None:
        self.spec = spec
        self.cfg = cfg
        # Testing aid (never set from config): False hands the code the real builtins and import, so that
        # the adversarial tests exercise the OS boundary alone.
        self.guards = guards
        self.level: str | None = None  # resolved at the first start
        self.applied: list[str] = []  # mechanisms the last worker reported applying
        self.__name__ = spec.function_name  # TRL names the logged metric rewards/{__name__}/mean after it
        self.__qualname__ = spec.function_name
        self.env = dict(WORKER_ENV)
        self.calls = 0
        self.failures = 0
        self.timeouts = 0
        self.restarts = 0
        self.skipped = 0
        self.last_error: str | None = None
        self.last_failure_kind: str | None = None
        self.dropped_kwargs: set[str] = set()
        self._latencies_ms: collections.deque[float] = collections.deque(maxlen=_LATENCY_WINDOW)
        self._total_ms = 0.0
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._zygote: _ZygoteHandle | None = None
        self._tmpdir: str | None = None
        self._stderr: Any = None
        self._rbuf = b""
        self._owner_pid = os.getpid()

    # -- public surface --------------------------------------------------------------------------------------
    @property
    def quarantined(self) -> bool:
        return self.failures >= self.cfg.max_failures

    @property
    def worker_pid(self) -> int | None:
        """Pid of the live worker, if one is running."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def stats(self) -> dict[str, Any]:
        lat = sorted(self._latencies_ms)

        def pct(q: float) -> float | None:
            return lat[min(len(lat) - 1, math.ceil(q * len(lat)) - 1)] if lat else None

        return {
            "calls": self.calls,
            "failures": self.failures,
            "timeouts": self.timeouts,
            "restarts": self.restarts,
            "skipped": self.skipped,
            "quarantined": self.quarantined,
            "total_latency_ms": self._total_ms,
            "p50_latency_ms": pct(0.50),
            "p99_latency_ms": pct(0.99),
            "sandbox_level": self.level,
            "sandbox_mechanisms": list(self.applied),
        }

    def start(self) -> str | None:
        """Start the worker and load the code now; returns None, or the error (which counts as a failure)."""
        with self._lock:
            if self.quarantined:
                return f"quarantined after {self.failures} failures: {self.last_error}"
            try:
                self._ensure_worker()
            except _CallFailed as exc:
                self._record_failure(exc)
                return self.last_error
            return None

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float | None]:
        n = len(completions)
        with self._lock:
            if self.quarantined:
                self.skipped += 1
                return [None] * n
            if n == 0:
                return []
            self.calls += 1
            started = time.monotonic()
            try:
                nonce = secrets.token_hex(8)
                payload = self._encode_call(nonce, prompts, completions, kwargs)
                self._ensure_worker()
                deadline = time.monotonic() + self.cfg.call_timeout_s + PARENT_GRACE_S
                self._write(payload, deadline)
                reply = self._read_reply(deadline)
                return self._scores(reply, nonce, n)
            except _CallFailed as exc:
                self._record_failure(exc)
                return [None] * n
            finally:
                elapsed = (time.monotonic() - started) * 1000.0
                self._latencies_ms.append(elapsed)
                self._total_ms += elapsed

    def close(self) -> None:
        """Stop the worker and remove its temporary directory; safe to call twice."""
        self._stop_worker(graceful=True)
        if self._tmpdir is not None and self._owner_pid == os.getpid():
            shutil.rmtree(self._tmpdir, ignore_errors=True)
        self._tmpdir = None

    def __enter__(self) -> SandboxedReward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: modules may already be gone; nothing left to report to
            pass

    def __reduce__(self) -> tuple[type[SandboxedReward], tuple[RewardSpec, SandboxConfig]]:
        return (SandboxedReward, (self.spec, self.cfg))  # a copy is guarded, whatever the original was

    def __repr__(self) -> str:
        state = "quarantined" if self.quarantined else ("running" if self.worker_pid else "idle")
        return f"SandboxedReward({self.__name__!r}, {state}, calls={self.calls}, failures={self.failures})"

    # -- failures --------------------------------------------------------------------------------------------
    def _record_failure(self, exc: _CallFailed) -> None:
        self.failures += 1
        if exc.kind == "timeout":
            self.timeouts += 1
        self.last_failure_kind = exc.kind
        self.last_error = f"{exc.kind}: {exc}"
        if exc.kill or self.quarantined:
            self._stop_worker()

    # -- worker lifecycle ------------------------------------------------------------------------------------
    def _ensure_worker(self) -> None:
        if self._proc is not None and self._owner_pid != os.getpid():
            # A forked child holds a copy of our handle; the worker belongs to the parent. Start our own.
            self._proc, self._zygote, self._stderr, self._tmpdir, self._rbuf = None, None, None, None, b""
            self._owner_pid = os.getpid()
        if self._proc is not None and self._proc.poll() is None:
            return
        if self._proc is not None:
            # Died while idle (e.g. PR_SET_PDEATHSIG fired because the thread that spawned it exited): no call
            # was running, so this is not the code's failure; restart.
            self._stop_worker()
            self.restarts += 1
        self._spawn()

    def _spawn(self) -> None:
        if self.level is None:
            self.level = levels.resolve_level(self.cfg)  # raises SandboxUnavailable: loud, not a failure
            log.info("sandbox: reward %r runs at level %r", self.__name__, self.level)
        plan = levels.plan_for(self.level)
        if self.level in levels.WEAK_LEVELS:
            log.warning("sandbox: starting a worker for %r at the weak level %r (no OS isolation; "
                        "sandbox.allow_weak=true)", self.__name__, self.level)  # fmt: skip
        if levels.needs_parent_protection(plan):
            levels.protect_parent()
        if self._tmpdir is None:
            self._tmpdir = tempfile.mkdtemp(prefix="rewardsearch-sandbox-")  # mode 0700
        self._stderr = open(os.path.join(self._tmpdir, "stderr"), "w+b")  # closed in _stop_worker
        self._rbuf = b""
        deadline = time.monotonic() + self.cfg.start_timeout_s
        try:
            self._proc = subprocess.Popen(
                worker_command(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=self.env,
                cwd=self._tmpdir,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise _CallFailed("load", f"could not start the worker: {exc}", kill=True) from None
        assert self._proc.stdin is not None and self._proc.stdout is not None
        os.set_blocking(self._proc.stdin.fileno(), False)
        try:
            apply_limits(self._proc.pid, self.cfg)
        except (OSError, ValueError) as exc:
            raise _CallFailed("load", f"could not limit the worker: {exc}", kill=True) from None
        nonce = secrets.token_hex(8)
        init = {
            "source": self.spec.source,
            "entrypoint": self.spec.function_name,
            "nonce": nonce,
            "score_bound": self.cfg.score_bound,
            "call_timeout_s": self.cfg.call_timeout_s,
            "cpu_s": math.ceil(self.cfg.call_timeout_s) + 1,
            "plan": plan,
            "guards": self.guards,
        }
        try:
            self._write((json.dumps(init) + "\n").encode(), deadline)
            reply = self._read_reply(deadline)
            if "zygote_pid" in reply and reply.get("nonce") == nonce:
                self._zygote = _ZygoteHandle(int(reply["zygote_pid"]))
                reply = self._read_reply(deadline)
        except _CallFailed as exc:
            raise _CallFailed("load", f"worker did not load the code: {exc}", kill=True) from None
        if reply.get("nonce") != nonce:
            raise _CallFailed("load", "worker replied with a wrong nonce while loading", kill=True)
        if reply.get("ok") is not True:
            kind = "isolation" if reply.get("kind") == "isolation" else "load"
            raise _CallFailed(kind, str(reply.get("error", "unknown error"))[:2000], kill=True)
        if reply.get("level") != self.level:
            raise _CallFailed("isolation", f"worker reports level {reply.get('level')!r}, not {self.level!r}",
                              kill=True)  # fmt: skip
        self.applied = [str(m) for m in reply.get("applied", [])]

    def _stop_worker(self, graceful: bool = False) -> None:
        """Stop the worker and everything below it; leave no process and no zombie behind.

        graceful (close()): EOF on stdin, and an idle zygote kills its spare child and exits. Otherwise, or if
        that takes too long: SIGKILL the zygote (its call children die with it: pid namespace or parent-death
        signal) and let W, their subreaper, reap them and exit. Last resort: SIGKILL the process group.
        """
        proc, self._proc = self._proc, None
        zygote, self._zygote = self._zygote, None
        if proc is not None and self._owner_pid == os.getpid():
            if proc.stdin is not None:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
            if not (graceful and _wait(proc, STOP_GRACE_S)):
                if zygote is not None and proc.poll() is None:
                    zygote.kill()  # W is alive, so Z's pid still names Z (W has not reaped it)
                if not _wait(proc, STOP_GRACE_S):
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)  # the whole group: anything it spawned goes too
                    except (ProcessLookupError, PermissionError):
                        pass
                    _wait(proc, 5.0)  # unkillable (D state): the kernel reaps it later, nothing more to do
            if proc.stdout is not None:
                try:
                    proc.stdout.close()
                except OSError:
                    pass
        if zygote is not None:
            zygote.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        self._rbuf = b""

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - STDERR_TAIL_BYTES))
            return self._stderr.read().decode(errors="replace").strip()
        except (OSError, ValueError):
            return ""

    def _crashed(self, when: str) -> _CallFailed:
        proc = self._proc
        code = proc.poll() if proc is not None else None
        if code is None and proc is not None:
            try:
                code = proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                code = None
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        tail = self._stderr_tail()
        return _CallFailed(
            "crash", f"worker died {when} ({how})" + (f": {tail[-500:]}" if tail else ""), kill=True
        )

    # -- I/O with a deadline ---------------------------------------------------------------------------------
    def _encode_call(self, nonce: str, prompts: Any, completions: Any, kwargs: dict[str, Any]) -> bytes:
        kw_json, dropped = _encode_kwargs(kwargs)
        self.dropped_kwargs.update(dropped)
        try:
            head = json.dumps({"prompts": prompts, "completions": completions})
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise _CallFailed("input", f"prompts/completions are not JSON-serializable: {exc}") from None
        # JSON escapes newlines inside strings, so the message is one line; the nonce travels outside the JSON
        # so the zygote can answer a dead child without decoding a multi-megabyte batch.
        return f'{nonce} {head[:-1]}, "kwargs": {kw_json}}}\n'.encode()

    def _write(self, data: bytes, deadline: float) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        fd = self._proc.stdin.fileno()
        view = memoryview(data)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._timeout()
            _, writable, _ = select.select([], [fd], [], remaining)
            if not writable:
                continue
            try:
                written = os.write(fd, view)
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                raise self._crashed("while receiving the call") from None
            view = view[written:]

    def _timeout(self) -> _CallFailed:
        limit = self.cfg.call_timeout_s + PARENT_GRACE_S
        return _CallFailed("timeout", f"no reply from the worker within {limit:g}s (worker killed)", kill=True)

    def _read_reply(self, deadline: float) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._rbuf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._timeout()
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise self._crashed("during the call")
            self._rbuf += chunk
            if len(self._rbuf) > MAX_REPLY_BYTES:
                raise _CallFailed("protocol", f"reply larger than {MAX_REPLY_BYTES} bytes", kill=True)
        line, _, self._rbuf = self._rbuf.partition(b"\n")
        try:
            reply = json.loads(line, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise _CallFailed("protocol", f"reply is not valid JSON: {exc}", kill=True) from None
        if not isinstance(reply, dict):
            raise _CallFailed("protocol", "reply is not a JSON object", kill=True)
        return reply

    def _scores(self, reply: dict[str, Any], nonce: str, n: int) -> list[float | None]:
        if reply.get("nonce") != nonce:
            raise _CallFailed("protocol", "reply nonce does not match the call", kill=True)
        if reply.get("ok") is not True:
            kind = reply.get("kind")
            # the zygote survives its children's deaths; only a broken setup needs a fresh worker
            raise _CallFailed(kind if kind in _KINDS else "error", str(reply.get("error", "unknown error"))[:2000],
                              kill=kind == "isolation")  # fmt: skip
        scores = reply.get("scores")
        if not isinstance(scores, list) or len(scores) != n:
            got = len(scores) if isinstance(scores, list) else type(scores).__name__
            raise _CallFailed("bad_result", f"expected {n} scores, got {got}")
        bound = self.cfg.score_bound
        out: list[float | None] = []
        for i, value in enumerate(scores):
            if value is None:
                out.append(None)
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _CallFailed("bad_result", f"score {i} is {type(value).__name__}, not a number")
            try:
                score = float(value)
            except OverflowError:
                score = math.inf
            if not math.isfinite(score) or abs(score) > bound:
                raise _CallFailed(
                    "bad_result", f"score {i} is {score}; must be finite with |score| <= {bound:g}"
                )
            out.append(score)
        return out
