"""Local executor: each trial is a `python -m rewardsearch.screen.trial SPEC.json` subprocess (a job may name another
module taking the same spec, e.g. `rewardsearch.screen.base_eval`).

Up to `slots` trials run side by side (a single GPU holds several small ones). Children die with the driver
(PR_SET_PDEATHSIG), so a killed run leaves no orphan trainer behind to race the resumed one. Completion
callbacks run in the caller's thread, so the store is only ever written from the driver's main thread.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rewardsearch.config import ExecutorConfig


@dataclass
class Job:
    trial_id: str
    spec_path: Path
    log_path: Path
    module: str = "rewardsearch.screen.trial"   # run as `python -m MODULE SPEC.json`


@dataclass
class Outcome:
    returncode: int
    wall_s: float
    timed_out: bool = False

    def tail(self, log_path: Path, chars: int = 600) -> str:
        try:
            text = log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-chars:]


def _die_with_parent() -> None:
    # Linux only: the child gets SIGKILL when the driver dies, even by SIGKILL.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    os.setsid()  # own process group: a timeout kills the trial and its reward workers together


class LocalExecutor:
    def __init__(self, cfg: ExecutorConfig, env: dict[str, str] | None = None):
        self.cfg = cfg
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.env.setdefault("TOKENIZERS_PARALLELISM", "false")
        # Trials side by side on a CPU each get their share of cores: two 1-thread trials on 2 cores finish
        # ~1.7x sooner than two 2-thread trials run one after the other (generation is latency-bound).
        threads = cfg.cpu_threads or max(1, (os.cpu_count() or 1) // cfg.slots)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            self.env[var] = str(threads)

    def run(
        self,
        jobs: list[Job],
        on_done: Callable[[Job, Outcome], list[Job] | None],
        on_start: Callable[[Job], None] | None = None,
        poll_s: float = 0.5,
        on_poll: Callable[[list[Job]], None] | None = None,
    ) -> None:
        """Run `jobs`, at most `slots` at once; `on_poll(running_jobs)` is called every `poll_s` (progress).

        `on_done` may return more jobs, queued behind the pending ones: successive halving starts a rung's promoted
        trials as soon as the rung is decided, while longer jobs (the baseline) keep their slots.
        """
        pending = list(jobs)
        running: dict[str, tuple[Job, subprocess.Popen, float, object]] = {}
        try:
            while pending or running:
                while pending and len(running) < self.cfg.slots:
                    job = pending.pop(0)
                    job.log_path.parent.mkdir(parents=True, exist_ok=True)
                    log = open(job.log_path, "ab")  # noqa: SIM115 - closed when the job ends
                    proc = subprocess.Popen(
                        [sys.executable, "-m", job.module, str(job.spec_path)],
                        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                        env=self.env, preexec_fn=_die_with_parent,
                    )
                    running[job.trial_id] = (job, proc, time.time(), log)
                    if on_start:
                        on_start(job)
                time.sleep(poll_s)
                if on_poll:
                    on_poll([job for job, *_ in running.values()])
                for tid in list(running):
                    job, proc, t0, log = running[tid]
                    rc = proc.poll()
                    timed_out = rc is None and time.time() - t0 > self.cfg.trial_timeout_s
                    if timed_out:
                        _kill_group(proc)
                        rc = proc.wait()
                    if rc is None:
                        continue
                    log.close()  # type: ignore[attr-defined]
                    del running[tid]
                    more = on_done(job, Outcome(returncode=rc, wall_s=time.time() - t0, timed_out=timed_out))
                    pending.extend(more or [])
        finally:
            for _job, proc, _t0, log in running.values():
                _kill_group(proc)
                log.close()  # type: ignore[attr-defined]


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
