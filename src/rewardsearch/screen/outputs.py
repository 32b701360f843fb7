"""The one reader of a trial's files, and the verdict the search and the final stage both take from them.

A job (`execute/base.py`) leaves its files in its directory (`screen/trial.py` lists them); the executor's
`TrialResult` says how its process ended. `read` loads the files once; `verdict` decides, the same way for every
caller, whether the trial is done, failed for the reward's own reasons (quarantined, early-stopped: fed back to
the proposer), or failed for infrastructure reasons after every retry (never the candidate's fault);
`note_run` adds one job's attempts, placement and time to the trial's record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardsearch.execute.base import TrialResult
from rewardsearch.store import TrialRecord

INFRA_PREFIX = "infrastructure: "   # a trial reason starting so was not the reward's doing


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None   # absent, or cut off by a kill mid-write (writers replace atomically, so rarely)


@dataclass
class TrialFiles:
    out_dir: Path
    train: dict[str, Any] | None
    evals: dict[str, dict[str, Any]] = field(default_factory=dict)    # split -> eval_<split>.json
    rung_eval: dict[str, Any] | None = None                          # eval_dev_rung<N>.json of a rung stop


def read(out_dir: Path, splits: list[str], rung_steps: int | None = None) -> TrialFiles:
    from rewardsearch.screen.trial import rung_eval_name

    evals = {s: d for s in splits if (d := _load(out_dir / f"eval_{s}.json")) is not None}
    rung = _load(out_dir / rung_eval_name(rung_steps)) if rung_steps is not None else None
    return TrialFiles(out_dir, _load(out_dir / "train.json"), evals, rung)


def lost_weights(train: dict[str, Any] | None) -> str | None:
    """Why a finished trial's weights are not what training made them, or None: a step logged a non-finite grad norm
    and was not skipped (`screen/nonfinite.py` skips them; runs from before it did not), so the optimizer wrote NaN
    into the adapter and every evaluation after it measures garbage, not the reward."""
    if not train or train.get("state") != "done":
        return None
    from rewardsearch.screen.early_stop import finite

    skipped = {s.get("step") for s in train.get("skipped_steps") or []}
    for row in train.get("log_history") or []:
        if "grad_norm" in row and not finite(row["grad_norm"]) and row.get("step") not in skipped:
            return (f"numerical: non-finite gradient applied at step {row.get('step')} (weights lost; trained "
                    "before non-finite steps were skipped)")
    return None


@dataclass
class Verdict:
    state: str                 # done | failed
    reason: str | None = None
    infra: bool = False        # failed for infrastructure reasons, not the reward's


def verdict(result: TrialResult, files: TrialFiles, need: list[str], trains: bool = True,
            rung: bool = False) -> Verdict:
    """done when the process finished and wrote what `need`s (eval splits; at a rung, its dev slice)."""
    infra = result.infra_reason
    if infra is not None:
        return Verdict("failed", INFRA_PREFIX + infra, infra=True)
    if trains and files.train is None:
        return Verdict("failed", INFRA_PREFIX + f"the trial process ended without train.json: {_tail(result)}",
                       infra=True)
    if trains and files.train.get("state") != "done":   # type: ignore[union-attr]
        return Verdict("failed", files.train.get("reason"))   # type: ignore[union-attr]
    if trains and (lost := lost_weights(files.train)):
        # the base rewards alone hit it too: not the candidate's doing, and a retry trains it again
        return Verdict("failed", INFRA_PREFIX + lost, infra=True)
    missing = (["the rung's dev slice"] if rung and files.rung_eval is None else []) + [
        f"eval_{s}.json" for s in need if s not in files.evals]
    if missing:
        return Verdict("failed", INFRA_PREFIX + f"the trial process finished without {', '.join(missing)}: "
                                                f"{_tail(result)}", infra=True)
    return Verdict("done")


def _tail(result: TrialResult) -> str:
    return " ".join(result.tail(300).split())[-300:]


TRAIN_FACTS = ("steps", "device", "dtype", "lora", "reward_stats", "normalize", "reward_weights", "reward_norm", "env",
               "skipped_steps")


def note_run(rec: TrialRecord, result: TrialResult, files: TrialFiles, job_key: str = "job_wall_s") -> None:
    """Add one job's attempts, time and training facts to `rec` (a halved trial runs as one job per rung).

    `job_key`: where the job's process time adds up (the final stage books an evaluation-only job of a trial
    trained before under `final_eval_wall_s`)."""
    m = rec.metrics
    m[job_key] = (m.get(job_key) or 0.0) + sum(a.wall_s for a in result.attempts)
    m["last_job_wall_s"] = result.wall_s
    m["queue_s"] = (m.get("queue_s") or 0.0) + sum(a.queue_s for a in result.attempts)
    m["attempts"] = [*(m.get("attempts") or []), *(a.to_dict() for a in result.attempts)]
    last = result.last
    m["placement"] = {"device": last.device, "host": last.host, "log": str(result.job.log_path)}
    train = files.train
    # the same train.json read twice (a job that only evaluated a trial trained before) is counted once
    seen = [train.get("steps"), train.get("wall_s")] if train is not None else None
    if train is not None and seen != m.get("train_seen"):
        m["train_seen"] = seen
        rec.wall_s = (rec.wall_s or 0.0) + (train.get("wall_s") or 0.0)
        for k in TRAIN_FACTS:
            if k in train:
                m[k] = train.get(k)
        # per job: where training started and where it stopped (a promotion's start equals its rung's stop)
        m["training_states"] = [*(m.get("training_states") or []),
                                {"steps": train.get("steps"), "resumed_from_step": train.get("resumed_from_step"),
                                 **(train.get("training_state") or {})}]
        rec.curves = train.get("log_history", rec.curves)
