"""What the benchmarks share: provenance of a result, writing it, and running real trials as subprocesses.

Trials here are the project's own (`python -m rewardsearch.screen.trial SPEC.json`), so a benchmark measures
exactly what a search runs; per-step times come from the trial's `steps.log` (one line per optimizer step).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def machine() -> dict[str, Any]:
    from importlib import metadata

    info: dict[str, Any] = {"host": platform.node(), "python": platform.python_version(), "cpus": os.cpu_count()}
    for pkg in ("torch", "transformers", "trl", "peft", "accelerate"):
        try:
            info[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            info[pkg] = None
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name()
            info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    except ImportError:
        pass
    return info


def write_result(name: str, payload: dict[str, Any], out_dir: Path | None = None) -> Path:
    """benchmarks/results/<date>-<name>.json (and a copy under $OUT when a device call brings it back)."""
    stamp = datetime.now(UTC)
    payload = {"benchmark": name, "date": stamp.isoformat(timespec="seconds"), "machine": machine(), **payload}
    targets = [out_dir or RESULTS]
    if os.environ.get("OUT"):
        targets.append(Path(os.environ["OUT"]))
    path = None
    for d in targets:
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{stamp:%Y-%m-%d}-{name}.json"
        path.write_text(json.dumps(payload, indent=1, default=str))
    print(f"wrote {path}")
    return path  # type: ignore[return-value]


def trial_spec(out_dir: Path, model_dir: str, overrides: list[str], trial_id: str = "bench",
               seed: int = 0, rewards: list[dict[str, Any]] | None = None, preset: str = "gpu") -> Path:
    """A baseline (base rewards only) trial spec from a preset plus `KEY=VALUE` overrides."""
    from rewardsearch.config import load_config
    from rewardsearch.screen.trial import TrialSpec

    cfg = load_config(preset=preset, overrides=overrides)
    spec = TrialSpec(
        trial_id=trial_id, out_dir=str(out_dir), model_dir=model_dir, seed=seed, task_seed=cfg.seed,
        task=cfg.task.model_dump(mode="json"), model=cfg.model.model_dump(mode="json"),
        screen=cfg.screen.model_dump(mode="json"), sandbox=cfg.sandbox.model_dump(mode="json"),
        eval=cfg.eval.model_dump(mode="json"), rewards=rewards or [], eval_splits=["dev"],
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    spec.write(out_dir / "spec.json")
    return out_dir / "spec.json"


def start_trial(spec: Path) -> subprocess.Popen:
    log = open(spec.parent / "trial.log", "w")  # noqa: SIM115 - closed with the process
    env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.Popen([sys.executable, "-m", "rewardsearch.screen.trial", str(spec)],
                            stdout=log, stderr=subprocess.STDOUT, env=env)


def wait_all(procs: list[subprocess.Popen], timeout_s: float) -> list[int | None]:
    deadline = time.time() + timeout_s
    codes: list[int | None] = []
    for p in procs:
        try:
            codes.append(p.wait(timeout=max(1.0, deadline - time.time())))
        except subprocess.TimeoutExpired:
            p.kill()
            codes.append(None)
    return codes


def step_times(trial_dir: Path, skip: int = 2) -> list[float]:
    """Seconds per optimizer step from steps.log, without the first `skip` (warm-up, graph capture)."""
    path = trial_dir / "steps.log"
    if not path.is_file():
        return []
    stamps = [float(line.split()[1]) for line in path.read_text().splitlines() if line.strip()]
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    return gaps[max(0, skip - 1):]


def summary(times: list[float]) -> dict[str, Any]:
    if not times:
        return {"steps_timed": 0}
    return {"steps_timed": len(times), "median_s": statistics.median(times), "mean_s": statistics.fmean(times),
            "min_s": min(times), "max_s": max(times)}


def trial_outcome(trial_dir: Path) -> dict[str, Any]:
    """Curves and the dev evaluation of a finished trial (what the comparisons look at)."""
    out: dict[str, Any] = {"dir": trial_dir.name}
    train = trial_dir / "train.json"
    if train.is_file():
        t = json.loads(train.read_text())
        out["state"], out["reason"], out["steps"] = t.get("state"), t.get("reason"), t.get("steps")
        out["generation"] = t.get("generation")
        keys = ("reward", "reward_std", "loss", "completions/mean_length", "completions/clipped_ratio",
                "frac_reward_zero_std", "rewards/answer_reward/mean", "rewards/exact_format_reward/mean",
                "kl", "entropy")
        out["curves"] = {k: [h.get(k) for h in t.get("log_history", []) if "loss" in h] for k in keys}
    ev = trial_dir / "eval_dev.json"
    if ev.is_file():
        e = json.loads(ev.read_text())
        out["dev"] = {k: e.get(k) for k in ("accuracy", "flex_accuracy", "extraction_rate", "ci95", "wall_s",
                                            "generation")}
        out["dev"]["n"] = len(e.get("item_ids", []))
        out["dev"]["samples"] = (e.get("samples") or [])[:2]
    else:
        log = trial_dir / "trial.log"
        if log.is_file():
            out["log_tail"] = log.read_text(errors="replace")[-1500:]
    return out
