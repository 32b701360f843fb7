"""The trial protocol: a job (a spec file on disk) in, a result record out, through one small executor interface.

    executor = make_executor(cfg.executor, device=cfg.screen.device)
    executor.run(jobs, on_done=..., on_start=..., on_poll=..., on_retry=...)

`EXECUTORS` maps `executor.name` to a lazily imported class, so `ray` (an optional extra) is imported only when it
is chosen. Every executor

- runs each job as `python -m JOB.module SPEC.json` in its own process (the trial, `screen/trial.py`, or a module
  taking the same spec), on the device it chose for it (`CUDA_VISIBLE_DEVICES` in the child's environment);
- classifies every finished attempt (`attempt_failure`): exit code 0 means the trial process finished and wrote
  its own verdict (done, or failed for the reward's own reasons: quarantined, early-stopped); anything else, a
  crash, a signal (the kernel's OOM killer sends SIGKILL), out of GPU or host memory, past its deadline, a lost
  node, is an infrastructure failure, not the reward's;
- retries an infrastructure failure up to `executor.retries` times, keeping every attempt's reason, device, host,
  queue and wall time in `TrialResult.attempts`; a retried trial continues from its last checkpoint;
- calls the callbacks in the caller's thread only, so the driver stays the single writer of the run store.

Adding an executor: subclass `Executor`, implement `_capacity`, `_start`, `_finished`, `_stop_all`, and register
its `"module:Class"` path in `EXECUTORS`.
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
import signal
import socket
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rewardsearch.config import ExecutorConfig

EXECUTORS: dict[str, str] = {
    "local": "rewardsearch.execute.local:LocalExecutor",
    "ray": "rewardsearch.execute.ray:RayExecutor",
}

# Set in every trial's environment: which attempt this is (1-based), so fault hooks (`execute/faults.py`) can fail
# only the first N attempts of a trial.
ATTEMPT_ENV = "REWARDSEARCH_ATTEMPT"
CRASH_FILE = "crash.json"   # written by a trial process that raised (`screen/trial.py:main`): type, reason, oom


class ExecutorError(RuntimeError):
    """An executor cannot run here (Ray missing, no GPU in the cluster, artifacts not reachable); one line."""


@dataclass
class Job:
    trial_id: str
    spec_path: Path
    log_path: Path
    module: str = "rewardsearch.screen.trial"   # run as `python -m MODULE SPEC.json`

    @property
    def out_dir(self) -> Path:
        return self.spec_path.parent


@dataclass
class Attempt:
    """One run of a job's process. `reason` is None when the process finished (exit 0); else why it did not."""

    attempt: int
    returncode: int | None
    wall_s: float
    queue_s: float
    device: str          # "cpu", or the CUDA_VISIBLE_DEVICES the process saw ("0", "1", "GPU-...")
    host: str
    timed_out: bool = False
    reason: str | None = None
    started: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrialResult:
    """What an executor hands back for a job: every attempt, the last one deciding."""

    job: Job
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def last(self) -> Attempt:
        return self.attempts[-1]

    @property
    def infra_reason(self) -> str | None:
        """Why the last attempt failed for infrastructure reasons (after every retry), or None if it finished."""
        r = self.last.reason
        if r is None:
            return None
        n = len(self.attempts)
        return f"{r} (attempt {n} of {n})" if n > 1 else r

    @property
    def wall_s(self) -> float:
        return self.last.wall_s

    @property
    def returncode(self) -> int | None:
        return self.last.returncode

    @property
    def timed_out(self) -> bool:
        return self.last.timed_out

    def tail(self, chars: int = 600) -> str:
        try:
            return self.job.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _signal_name(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"


def attempt_failure(returncode: int | None, timed_out: bool, timeout_s: float, out_dir: Path,
                    log_tail: str = "") -> str | None:
    """The infrastructure reason an attempt failed, or None when the process finished (exit code 0).

    A negative return code is a signal (subprocess' convention); 128+N is a signal seen through a shell.
    """
    if timed_out:
        return f"past its deadline of {timeout_s:.0f}s (executor.trial_timeout_s): killed"
    if returncode == 0:
        return None
    if returncode is not None and (returncode < 0 or returncode > 128):
        sig = -returncode if returncode < 0 else returncode - 128
        why = f"killed by {_signal_name(sig)}"
        if sig == signal.SIGKILL:
            why += " (out of host memory, the kernel's OOM killer, or killed from outside)"
        return why
    crash = out_dir / CRASH_FILE
    if crash.is_file():
        try:
            c = json.loads(crash.read_text())
        except ValueError:
            c = {}
        if c.get("oom"):
            return f"out of {c['oom']} memory: {c.get('reason', '')}".rstrip(": ")
        return f"crashed: {c.get('reason', '?')}"
    tail = " ".join(log_tail.strip().split())[-300:]
    return f"exit code {returncode}" + (f": {tail}" if tail else "")


def hostname() -> str:
    return socket.gethostname()


class Executor(ABC):
    """Runs jobs with retries; subclasses only start processes somewhere and report when they end."""

    def __init__(self, cfg: ExecutorConfig, device: str = "auto", env: dict[str, str] | None = None):
        self.cfg = cfg
        self.device = device
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.env.setdefault("TOKENIZERS_PARALLELISM", "false")

    # -- what a subclass provides --------------------------------------------------------------------------

    @abstractmethod
    def _capacity(self) -> int:
        """How many more jobs may start now."""

    @abstractmethod
    def _start(self, job: Job, attempt: int, queued_at: float) -> dict[str, Any]:
        """Start one attempt; returns what is known of its placement now (`device`, `host`)."""

    @abstractmethod
    def _finished(self, wait_s: float) -> list[tuple[Job, Attempt]]:
        """Attempts that ended (waiting up to `wait_s` for one)."""

    @abstractmethod
    def _running_jobs(self) -> list[Job]: ...

    @abstractmethod
    def _stop_all(self) -> None:
        """Kill everything still running (the driver is stopping: SIGINT, an error)."""

    def describe(self) -> dict[str, Any]:
        """Where trials run (for the store and `status`)."""
        return {"name": self.cfg.name}

    # -- the one loop --------------------------------------------------------------------------------------

    def run(
        self,
        jobs: list[Job],
        on_done: Callable[[Job, TrialResult], list[Job] | None],
        on_start: Callable[[Job, dict[str, Any]], None] | None = None,
        poll_s: float = 0.5,
        on_poll: Callable[[list[Job]], None] | None = None,
        on_retry: Callable[[Job, Attempt], None] | None = None,
    ) -> None:
        """Run `jobs`; `on_done(job, result)` may return more jobs, queued behind the pending ones (successive
        halving starts a rung's promoted trials as soon as the rung is decided). `on_start(job, placement)` runs
        for every attempt, `on_retry(job, failed_attempt)` before a retry, `on_poll(running)` every `poll_s`."""
        pending: deque[tuple[Job, int, float]] = deque((j, 1, time.time()) for j in jobs)
        history: dict[str, list[Attempt]] = {}
        try:
            while pending or self._running_jobs():
                while pending and self._capacity() > 0:
                    job, n, queued = pending.popleft()
                    job.log_path.parent.mkdir(parents=True, exist_ok=True)
                    placement = self._start(job, n, queued)
                    if on_start:
                        on_start(job, {"attempt": n, **placement})
                for job, att in self._finished(poll_s):
                    history.setdefault(job.trial_id, []).append(att)
                    if att.reason is not None and att.attempt <= self.cfg.retries:
                        if on_retry:
                            on_retry(job, att)
                        # a retry goes first: its checkpoint is on disk, and it was queued before the rest
                        pending.appendleft((job, att.attempt + 1, time.time()))
                        continue
                    more = on_done(job, TrialResult(job, history.pop(job.trial_id)))
                    pending.extend((j, 1, time.time()) for j in more or [])
                if on_poll:
                    on_poll(self._running_jobs())
        finally:
            self._stop_all()


def make_executor(cfg: ExecutorConfig, device: str = "auto", env: dict[str, str] | None = None) -> Executor:
    """The executor `cfg.name` names (imported only now); `device` is `screen.device` (cpu places no GPUs)."""
    path = EXECUTORS.get(cfg.name)
    if path is None:
        guess = difflib.get_close_matches(cfg.name, list(EXECUTORS), n=1)
        hint = f" (did you mean '{guess[0]}'?)" if guess else ""
        raise ValueError(f"executor.name={cfg.name!r} is not registered{hint}; known: {', '.join(EXECUTORS)}")
    module, _, attr = path.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    return cls(cfg, device=device, env=env)
