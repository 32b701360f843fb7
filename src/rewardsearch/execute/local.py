"""Local executor: a pool of trial subprocesses on this machine, placed on every visible GPU.

Each job runs as `python -m MODULE SPEC.json` (`execute/base.py`). Placement: with GPUs visible and
`screen.device` not `cpu`, up to `executor.slots` trials share each GPU, every trial seeing only its own through
`CUDA_VISIBLE_DEVICES`; a new trial goes to the least loaded GPU, so N trials over G GPUs spread before they
stack. Without GPUs, `executor.slots` trials share the CPU cores (each gets cores / trials-at-once threads).
Which GPUs: `executor.gpus`, else the driver's `CUDA_VISIBLE_DEVICES`, else what `nvidia-smi -L` lists.
With `executor.trial_gpu_gib`, a GPU takes no more trials than fit in the memory free on it at the start
(`slots_that_fit`): too many slots would otherwise end in out-of-memory retries that fail again while the
others still hold the card (measured on an H200: seven 26 GiB Qwen trials on one 140 GiB GPU).

Children die with the driver (PR_SET_PDEATHSIG), so a killed run leaves no orphan trainer behind to race the
resumed one; each child is its own process group, so a deadline kills the trial and its reward workers together.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from rewardsearch.config import ExecutorConfig
from rewardsearch.execute.base import ATTEMPT_ENV, Attempt, Executor, Job, attempt_failure, hostname


def visible_gpus(device: str, env: dict[str, str], configured: list[str] | None = None) -> list[str]:
    """The GPU ids trials may be placed on ([] = CPU). `CUDA_VISIBLE_DEVICES` may hold indices or UUIDs."""
    if device == "cpu":
        return []
    if configured is not None:
        return list(configured)
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None:
        ids = [x.strip() for x in cvd.split(",") if x.strip()]
        # CUDA stops at the first invalid entry ("-1" hides every GPU)
        out = []
        for x in ids:
            if x.startswith("-"):
                break
            out.append(x)
        return out
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(listing.splitlines()) if line.startswith("GPU ")]


def gpu_free_mib(ids: list[str]) -> dict[str, int]:
    """Free memory (MiB) of each of `ids` (indices or UUIDs, as CUDA_VISIBLE_DEVICES takes them) as nvidia-smi
    reports it; ids it does not list are left out ({} without nvidia-smi)."""
    if not ids or shutil.which("nvidia-smi") is None:
        return {}
    try:
        text = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,uuid,memory.free", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=30,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    free: dict[str, int] = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and parts[2].isdigit():
            free[parts[0]] = free[parts[1]] = int(parts[2])
    return {i: free[i] for i in ids if i in free}


def slots_that_fit(slots: int, free_mib: int | None, trial_gib: float | None) -> int:
    """Trials one GPU runs at once: `slots`, or fewer when `trial_gib` each do not fit in `free_mib` (at least
    one: a single trial that does not fit fails with its own out-of-memory error, which says more than a hang)."""
    if trial_gib is None or free_mib is None:
        return slots
    return max(1, min(slots, int(free_mib // (trial_gib * 1024))))


class SlotPool:
    """Trial slots over devices: `per_device` on each GPU (or `caps[dev]` where given), or `per_device` on the
    CPU when there is none."""

    def __init__(self, gpus: list[str], per_device: int, caps: dict[str, int] | None = None):
        self.devices = list(gpus) or ["cpu"]
        self.cap = {d: (caps or {}).get(d, per_device) for d in self.devices}
        self.load = dict.fromkeys(self.devices, 0)

    @property
    def total(self) -> int:
        return sum(self.cap.values())

    def free(self) -> int:
        return self.total - sum(self.load.values())

    def take(self) -> str:
        # least loaded first, then in listed order: trials spread over the GPUs before they share one
        open_devs = [d for d in self.devices if self.load[d] < self.cap[d]]
        if not open_devs:
            raise RuntimeError("no free slot")  # the caller checks free() first
        dev = min(open_devs, key=lambda d: (self.load[d], self.devices.index(d)))
        self.load[dev] += 1
        return dev

    def give(self, dev: str) -> None:
        self.load[dev] -= 1


def _die_with_parent() -> None:
    # Linux only: the child gets SIGKILL when the driver dies, even by SIGKILL.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    os.setsid()  # own process group: a timeout kills the trial and its reward workers together


class LocalExecutor(Executor):
    def __init__(self, cfg: ExecutorConfig, device: str = "auto", env: dict[str, str] | None = None):
        super().__init__(cfg, device, env)
        gpus = visible_gpus(device, self.env, cfg.gpus)
        caps: dict[str, int] = {}
        if cfg.trial_gpu_gib is not None and gpus:
            free = gpu_free_mib(gpus)
            caps = {g: slots_that_fit(cfg.slots, free.get(g), cfg.trial_gpu_gib) for g in gpus}
            for g, n in caps.items():
                if n < cfg.slots:
                    print(f"executor: GPU {g} runs {n} trial(s) at once, not executor.slots={cfg.slots}: "
                          f"{free[g] / 1024:.1f} GiB free / executor.trial_gpu_gib={cfg.trial_gpu_gib:g}",
                          file=sys.stderr)
        self.pool = SlotPool(gpus, cfg.slots, caps)
        # Trials side by side on a CPU each get their share of cores: two 1-thread trials on 2 cores finish
        # ~1.7x sooner than two 2-thread trials run one after the other (generation is latency-bound).
        threads = cfg.cpu_threads or max(1, (os.cpu_count() or 1) // self.pool.total)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            self.env[var] = str(threads)
        self.host = hostname()
        self._running: dict[str, tuple[Job, subprocess.Popen, float, float, int, str, IO[bytes]]] = {}

    def describe(self) -> dict[str, Any]:
        return {"name": "local", "host": self.host, "devices": self.pool.devices, "slots_per_device": self.cfg.slots,
                "slots_by_device": dict(self.pool.cap),
                "threads_per_trial": int(self.env["OMP_NUM_THREADS"])}

    def _capacity(self) -> int:
        return self.pool.free()

    def _start(self, job: Job, attempt: int, queued_at: float) -> dict[str, Any]:
        dev = self.pool.take()
        env = {**self.env, ATTEMPT_ENV: str(attempt)}
        # a CPU trial sees no GPU at all: nothing it imports can take memory on a card other trials use
        env["CUDA_VISIBLE_DEVICES"] = "" if dev == "cpu" else dev
        log = open(job.log_path, "ab")  # noqa: SIM115 - closed when the attempt ends
        log.write(f"== attempt {attempt} on {self.host} device {dev} at {time.strftime('%H:%M:%S')} ==\n".encode())
        log.flush()
        (job.out_dir / "crash.json").unlink(missing_ok=True)  # a previous attempt's; this one writes its own
        proc = subprocess.Popen(
            [sys.executable, "-m", job.module, str(job.spec_path)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, preexec_fn=_die_with_parent,
        )
        t0 = time.time()
        self._running[job.trial_id] = (job, proc, t0, t0 - queued_at, attempt, dev, log)
        return {"device": dev, "host": self.host}

    def _running_jobs(self) -> list[Job]:
        return [r[0] for r in self._running.values()]

    def _finished(self, wait_s: float) -> list[tuple[Job, Attempt]]:
        time.sleep(wait_s)
        out = []
        for tid in list(self._running):
            job, proc, t0, queue_s, attempt, dev, log = self._running[tid]
            rc = proc.poll()
            timed_out = rc is None and time.time() - t0 > self.cfg.trial_timeout_s
            if timed_out:
                _kill_group(proc)
                rc = proc.wait()
            if rc is None:
                continue
            log.close()
            del self._running[tid]
            self.pool.give(dev)
            tail = _tail(job.log_path)
            out.append((job, Attempt(
                attempt=attempt, returncode=rc, wall_s=time.time() - t0, queue_s=queue_s, device=dev,
                host=self.host, timed_out=timed_out, started=t0,
                reason=attempt_failure(rc, timed_out, self.cfg.trial_timeout_s, job.out_dir, tail),
            )))
        return out

    def _stop_all(self) -> None:
        for _job, proc, _t0, _q, _a, dev, log in self._running.values():
            _kill_group(proc)
            log.close()
            self.pool.give(dev)
        self._running.clear()


def _tail(path: Path, chars: int = 600) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
