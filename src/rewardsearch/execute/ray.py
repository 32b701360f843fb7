"""Ray executor (`executor.name=ray`, `pip install -e ".[ray]"`): each trial attempt is one Ray task.

A task asks for `1/executor.slots` of a GPU when the trials train on CUDA (fractional: Ray packs `slots` trials
on one GPU and sets `CUDA_VISIBLE_DEVICES` for each) and `executor.cpu_threads` CPUs (1 when 0). Inside the task
the trial runs as the same subprocess the local executor starts (`python -m MODULE SPEC.json`, its own process
group, dying with the task's worker), so the trial code does not know which executor ran it.

The cluster: `executor.address` joins an existing one (`auto`, `ray://HOST:10001`); unset, a private local cluster
is started for this driver (`address="local"`: never someone else's cluster on the same machine) and stops with it.

Artifacts: with `executor.artifact_dir` (a directory every node sees at the same path, holding the run directory)
trials write in place. Without it, the trial's directory (spec, log, checkpoints a promotion continues from) is
shipped to the task as a tar and shipped back with the result; the driver unpacks it into the run directory before
reading it. Either way the run directory looks the same afterwards, so `resume` may switch executors.

The driver stays the single writer of the run store: tasks only return records. A task whose worker or node dies
comes back as an error from Ray and counts as an infrastructure failure (retried by `execute/base.py`); a task
that Ray never returns is cancelled `_LOST_GRACE_S` past its deadline. Queue time is measured from submission to
the task's start on its node (the two clocks may differ across machines by their skew).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from rewardsearch.config import ExecutorConfig
from rewardsearch.execute.base import (
    ATTEMPT_ENV,
    Attempt,
    Executor,
    ExecutorError,
    Job,
    attempt_failure,
    hostname,
)

_LOST_GRACE_S = 300.0
# passed to every task: the node's own environment is the cluster's, not the driver's
_PASSED_ENV = ("REWARDSEARCH_", "HF_", "WANDB_", "MLFLOW_", "TENSORBOARD_")


def _tar(path: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(path, arcname="trial")
    return buf.getvalue()


def _untar(data: bytes, dest: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        tar.extractall(dest, filter="data")


def run_attempt(module: str, spec_path: str, bundle: bytes | None, attempt: int, timeout_s: float,
                env_extra: dict[str, str], use_gpu: bool) -> dict[str, Any]:
    """The body of one Ray task: run the trial subprocess on this node; returns the attempt's record (and, when
    shipped, the trial directory as a tar)."""
    from rewardsearch.execute.local import _die_with_parent, _kill_group

    started = time.time()
    tmp = None
    if bundle is not None:
        tmp = Path(tempfile.mkdtemp(prefix="rewardsearch-trial-"))
        _untar(bundle, tmp)
        out = tmp / "trial"
        spec = json.loads((out / "spec.json").read_text())
        spec["out_dir"] = str(out)
        if "model_dir" in spec and not Path(spec["model_dir"]).is_dir():   # another machine: resolve it here
            from rewardsearch.config import ModelConfig
            from rewardsearch.models import resolve_model

            spec["model_dir"] = str(resolve_model(ModelConfig.model_validate(spec["model"])))
        (out / "spec.json").write_text(json.dumps(spec, indent=1))
    else:
        out = Path(spec_path).parent
    env = {**os.environ, **env_extra, ATTEMPT_ENV: str(attempt)}
    device = env.get("CUDA_VISIBLE_DEVICES", "") if use_gpu else "cpu"
    (out / "crash.json").unlink(missing_ok=True)
    with open(out / "log.txt", "ab") as log:
        log.write(f"== attempt {attempt} on {hostname()} device {device} (ray) at "
                  f"{time.strftime('%H:%M:%S')} ==\n".encode())
        log.flush()
        proc = subprocess.Popen([sys.executable, "-m", module, str(out / "spec.json")], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                preexec_fn=_die_with_parent)
        timed_out = False
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
            rc = proc.returncode
    tail = (out / "log.txt").read_text(errors="replace")[-600:]
    rec = {"returncode": rc, "timed_out": timed_out, "wall_s": time.time() - started, "started": started,
           "host": hostname(), "device": device,
           "reason": attempt_failure(rc, timed_out, timeout_s, out, tail), "bundle": None}
    if tmp is not None:
        rec["bundle"] = _tar(out)
        shutil.rmtree(tmp, ignore_errors=True)
    return rec


class RayExecutor(Executor):
    def __init__(self, cfg: ExecutorConfig, device: str = "auto", env: dict[str, str] | None = None):
        super().__init__(cfg, device, env)
        try:
            import ray
        except ImportError:
            raise ExecutorError('executor.name=ray needs Ray: pip install -e ".[ray]" (or use executor.name=local)') \
                from None
        self.ray = ray
        if not ray.is_initialized():
            import logging

            common = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
            if cfg.address:
                ray.init(address=cfg.address, **common)
            else:
                ray.init(address="local", num_cpus=os.cpu_count() or 1, **common)
        res = ray.cluster_resources()
        self.use_gpu = device != "cpu" and res.get("GPU", 0) > 0
        if device == "cuda" and not self.use_gpu:
            raise ExecutorError(f"screen.device=cuda but the Ray cluster at {cfg.address or 'local'} has no GPU "
                                f"(resources: {dict(res)})")
        self.num_gpus = 1.0 / cfg.slots if self.use_gpu else 0.0
        self.num_cpus = float(cfg.cpu_threads or 1)
        self.shared = Path(cfg.artifact_dir).resolve() if cfg.artifact_dir else None
        self.env_extra = {k: v for k, v in self.env.items() if k.startswith(_PASSED_ENV)}
        self.env_extra.update(PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false",
                              OMP_NUM_THREADS=str(int(self.num_cpus)), MKL_NUM_THREADS=str(int(self.num_cpus)))
        self.task = ray.remote(run_attempt).options(num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=0)
        self._inflight: dict[Any, tuple[Job, int, float]] = {}   # object ref -> (job, attempt, submitted at)

    def describe(self) -> dict[str, Any]:
        res = self.ray.cluster_resources()
        return {"name": "ray", "address": self.cfg.address or "local", "nodes": len(self.ray.nodes()),
                "cpus": res.get("CPU", 0), "gpus": res.get("GPU", 0), "num_gpus_per_trial": self.num_gpus,
                "num_cpus_per_trial": self.num_cpus, "artifacts": str(self.shared) if self.shared else "shipped"}

    def _capacity(self) -> int:
        # submit no more than the cluster can start now, so a submitted task is a started one (queue time stays
        # meaningful and `on_start` reports a real start); nodes that join raise it
        res = self.ray.cluster_resources()
        fit = int(res.get("CPU", 0) // self.num_cpus)
        if self.use_gpu:
            fit = min(fit, int(res.get("GPU", 0) / self.num_gpus + 1e-9))
        return max(fit, 1 if not self._inflight else 0) - len(self._inflight)

    def _start(self, job: Job, attempt: int, queued_at: float) -> dict[str, Any]:
        bundle = None
        if self.shared is None:
            bundle = _tar(job.out_dir)
        elif not job.out_dir.resolve().is_relative_to(self.shared):
            raise ExecutorError(f"executor.artifact_dir={str(self.shared)!r}: the run directory "
                                f"{str(job.out_dir.parent.parent)!r} is not inside it; put the run there "
                                "(--out), or unset executor.artifact_dir to ship artifacts with the results")
        ref = self.task.remote(job.module, str(job.spec_path), bundle, attempt, self.cfg.trial_timeout_s,
                               self.env_extra, self.use_gpu)
        self._inflight[ref] = (job, attempt, queued_at)
        return {"device": f"ray:{self.num_gpus:g}gpu" if self.use_gpu else "ray:cpu", "host": "ray"}

    def _running_jobs(self) -> list[Job]:
        return [j for j, _, _ in self._inflight.values()]

    def _finished(self, wait_s: float) -> list[tuple[Job, Attempt]]:
        ray = self.ray
        if not self._inflight:
            time.sleep(wait_s)
            return []
        ready, _ = ray.wait(list(self._inflight), num_returns=len(self._inflight), timeout=wait_s)
        now = time.time()
        for ref, (_job, _a, submitted) in list(self._inflight.items()):
            if ref not in ready and now - submitted > self.cfg.trial_timeout_s + _LOST_GRACE_S:
                ray.cancel(ref, force=True)   # the task never came back: its node is gone or wedged
        out = []
        for ref in ready:
            job, attempt, queued = self._inflight.pop(ref)
            try:
                rec = ray.get(ref)
            except ray.exceptions.RayError as exc:
                why = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).split())[-300:]
                what = ("the Ray task raised" if isinstance(exc, ray.exceptions.RayTaskError)
                        else "lost its Ray worker or node")
                out.append((job, Attempt(attempt=attempt, returncode=None, wall_s=now - queued, queue_s=0.0,
                                         device="?", host="?", reason=f"{what}: {type(exc).__name__}: {why}")))
                continue
            if rec["bundle"] is not None:
                self._unpack(job, rec["bundle"])
            out.append((job, Attempt(
                attempt=attempt, returncode=rec["returncode"], wall_s=rec["wall_s"],
                queue_s=max(0.0, rec["started"] - queued), device=rec["device"], host=rec["host"],
                timed_out=rec["timed_out"], reason=rec["reason"], started=rec["started"],
            )))
        return out

    @staticmethod
    def _unpack(job: Job, bundle: bytes) -> None:
        """Replace the trial directory by what the task sent back (files the trial removed, e.g. finished
        checkpoints, go too); the driver's own spec.json is kept (the task's names a path on its node)."""
        out = job.out_dir
        spec = job.spec_path.read_bytes()
        staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=out.parent))
        _untar(bundle, staging)
        (staging / "trial" / "spec.json").write_bytes(spec)
        old = out.with_name(out.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        (staging / "trial").rename(out)
        shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)

    def _stop_all(self) -> None:
        for ref in list(self._inflight):
            self.ray.cancel(ref, force=True)
        self._inflight.clear()
