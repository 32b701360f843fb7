"""What the Ray executor costs per trial, against the local one, on this machine.

    python benchmarks/executor_overhead.py [--jobs 12] [--out benchmarks/results/executor-overhead.json]

Each job is a no-op process taking a spec (`python -m json.tool SPEC.json`), so what is measured is the executor:
spawning the process, (Ray) shipping the trial directory to the task and back, scheduling, and the result's way
back. Jobs run one at a time (slots=1) so every job's latency, submit to result, is its own. Reported: the local
cluster's start, the mean latency per job under each executor and their difference, Ray's overhead per trial.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from rewardsearch.config import ExecutorConfig
from rewardsearch.execute.base import Job, make_executor


def _jobs(root: Path, n: int, payload_kb: int) -> list[Job]:
    out = []
    for i in range(n):
        d = root / f"job{i}"
        d.mkdir(parents=True)
        (d / "spec.json").write_text(json.dumps({"trial_id": f"job{i}"}))
        (d / "payload.bin").write_bytes(os.urandom(payload_kb * 1024))   # e.g. an adapter to ship both ways
        out.append(Job(f"job{i}", d / "spec.json", d / "log.txt", module="json.tool"))
    return out


def measure(name: str, n: int, payload_kb: int) -> dict:
    t0 = time.time()
    ex = make_executor(ExecutorConfig(name=name, slots=1, cpu_threads=1), device="cpu")
    start_s = time.time() - t0
    lat: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        jobs = _jobs(Path(tmp), n, payload_kb)
        for job in jobs:   # one at a time: the latency of each is its own
            t = time.time()
            ex.run([job], on_done=lambda _j, r: None, poll_s=0.05)
            lat.append(time.time() - t)
    return {"executor": name, "start_s": round(start_s, 2), "jobs": n, "payload_kb": payload_kb,
            "mean_latency_s": round(statistics.mean(lat[1:]), 3), "first_latency_s": round(lat[0], 3),
            "median_latency_s": round(statistics.median(lat[1:]), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=12)
    ap.add_argument("--payload-kb", type=int, default=4096)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    local = measure("local", a.jobs, a.payload_kb)
    ray = measure("ray", a.jobs, a.payload_kb)
    res = {"machine": {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version()},
           "date": time.strftime("%Y-%m-%d"), "local": local, "ray": ray,
           "ray_overhead_per_trial_s": round(ray["mean_latency_s"] - local["mean_latency_s"], 3),
           "note": "mean over jobs 2..N (the first pays worker start-up: first_latency_s); local polls every 0.05 s"}
    text = json.dumps(res, indent=1)
    print(text)
    if a.out:
        a.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
