"""Rows of the leaderboard, the proposer's history and the per-round feedback, all derived from the store.

Ranking uses the dev split only; test numbers are never part of what a proposer sees.
"""

from __future__ import annotations

import math
from typing import Any

from rewardsearch.propose.base import HistoryEntry
from rewardsearch.screen.nonfinite import skipped_steps_flags
from rewardsearch.search.hacking import hacking_flags, trial_shift
from rewardsearch.store import EvalRecord, Store, TrialRecord

BASELINE = "baseline"
BASE_MODEL = "base-model"   # the untrained base model's own evaluation (`screen/base_eval.py`): no rewards at all


def trial_id_for(candidate_id: str | None, seed: int) -> str:
    return f"{BASELINE}-s{seed}" if candidate_id is None else f"t-{candidate_id}-s{seed}"


def base_model_trial_id(seed: int) -> str:
    return f"{BASE_MODEL}-s{seed}"


def curve_summary(curves: list[dict[str, Any]]) -> dict[str, float]:
    """Mean over the run of each logged scalar (TRL's names): per-reward means, reward std, zero-std share, KL..."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for row in curves:
        for k, v in row.items():
            if k in ("step", "epoch") or not isinstance(v, int | float) or isinstance(v, bool):
                continue
            if isinstance(v, float) and not math.isfinite(v):
                continue
            sums[k] = sums.get(k, 0.0) + float(v)
            counts[k] = counts.get(k, 0) + 1
    return {k: round(sums[k] / counts[k], 6) for k in sums}


def _eval_obj(store: Store, trial: TrialRecord | None, split: str) -> dict[str, Any] | None:
    if trial is None:
        return None
    e = store.eval(trial.id, split)
    if e is None:
        return None
    return {
        "accuracy": e.accuracy,
        "ci95": [e.ci95[0], e.ci95[1]],
        "extraction_rate": e.extraction_rate,
        "flex_accuracy": e.flex_accuracy,
        "f1_paper": e.f1,
        "n": e.n,
        "mean_length": e.mean_length,   # characters
    }


def base_model_status(store: Store, seed: int) -> dict[str, Any]:
    """The base model's dev evaluation (the "before" of every trial) and the state of the job that makes it."""
    t = store.trial(base_model_trial_id(seed))
    return {"state": t.state if t else "pending", "reason": t.reason if t else None,
            "dev": _eval_obj(store, t, "dev")}


def _trial_flags(base: EvalRecord | None, store: Store, t: TrialRecord | None) -> tuple[list[str], dict[str, Any] | None]:
    """A trial's hacking and skipped-step flags and its before/after numbers (`search/hacking.py` and
    `screen/nonfinite.py` own the rules)."""
    if t is None:
        return [], None
    after = store.eval(t.id, "dev")
    return (hacking_flags(base, after, t.curves) + skipped_steps_flags(t.metrics.get("skipped_steps")),
            trial_shift(base, after, t.curves))


def rung_summary(store: Store, t: TrialRecord | None) -> dict[str, Any]:
    """How far a trial got under successive halving: `steps` trained, `rung` reached (1-based, of `rungs_total`),
    `stopped` (why it stopped there, one line) and the per-rung results. Empty values before it trained."""
    total = len(_schedule(store))
    rows = store.rungs(trial_id=t.id) if t is not None else []
    steps = t.metrics.get("steps") if t is not None else None
    if not rows:
        return {"steps": steps, "rung": None, "rungs_total": total, "stopped": None, "rungs": []}
    top = rows[-1]
    why = {
        "final": f"trained the full budget ({top.steps} steps)",
        "promoted": f"promoted from rung {top.rung} ({top.steps} steps)",
        "dropped": f"dropped at rung {top.rung}/{total} ({top.steps} steps)",
        "failed": f"failed at rung {top.rung}/{total}",
    }.get(top.decision or "", f"at rung {top.rung}/{total} ({top.steps} steps), awaiting the rung's decision")
    if top.decision in ("dropped", "failed") and top.reason:
        why += f": {top.reason}"
    return {
        "steps": top.steps_trained if top.steps_trained is not None else steps, "rung": top.rung, "rungs_total": total,
        "stopped": why,
        "rungs": [{"rung": x.rung, "steps": x.steps, "steps_trained": x.steps_trained, "state": x.state,
                   "n": x.n, "accuracy": x.accuracy, "decision": x.decision, "reason": x.reason, "wall_s": x.wall_s}
                  for x in rows],
    }


def _schedule(store: Store) -> list[int]:
    screen = (store.get_meta("config") or {}).get("screen") or {}
    return list(screen.get("rungs") or []) or [screen.get("steps", 0)]


def _trial_obj(t: TrialRecord | None) -> dict[str, Any] | None:
    if t is None:
        return None
    m = t.metrics
    return {
        "id": t.id,
        "state": t.state,
        "wall_s": t.wall_s,
        "steps": m.get("steps"),
        "lora_delta_l2": (m.get("lora") or {}).get("delta_l2"),
        "skipped_steps": [x.get("step") for x in m.get("skipped_steps") or []],
        "frac_reward_zero_std": curve_summary(t.curves).get("frac_reward_zero_std"),
    }


def leaderboard(store: Store, seed: int) -> list[dict[str, Any]]:
    """Baseline first, then every candidate, each with its state, dev/test metrics and trial summary.

    `flags` are the candidate's check flags plus the trial's hacking flag and skipped steps; `shift` holds the base model -> trained
    numbers and the training trend behind it (`search/hacking.py`).
    """
    rows: list[dict[str, Any]] = []
    base_model = store.eval(base_model_trial_id(seed), "dev")
    base = store.trial(trial_id_for(None, seed))
    hack, shift = _trial_flags(base_model, store, base)
    rows.append({
        "id": BASELINE, "name": "base rewards only", "round": 0, "origin": BASELINE,
        "state": _baseline_state(base), "reason": base.reason if base else None, "flags": hack,
        "dev": _eval_obj(store, base, "dev"), "test": _eval_obj(store, base, "test"), "trial": _trial_obj(base),
        "shift": shift, **rung_summary(store, base),
    })
    for c in store.candidates():
        t = store.trial(trial_id_for(c["id"], seed))
        hack, shift = _trial_flags(base_model, store, t)
        rows.append({
            "id": c["id"], "name": c["name"], "round": c["round"], "origin": c["origin"], "state": c["state"],
            "reason": c["reason"], "flags": c["flags"] + hack, "description": c["description"],
            "dev": _eval_obj(store, t, "dev"), "test": _eval_obj(store, t, "test"), "trial": _trial_obj(t),
            "shift": shift, **rung_summary(store, t),
        })
    return rows


def _baseline_state(t: TrialRecord | None) -> str:
    if t is None:
        return "pending"
    return {"done": "evaluated", "failed": "failed"}.get(t.state, t.state)


def rank_key(row: dict[str, Any]) -> tuple:
    """Sort key of a leaderboard row: evaluated first, best dev accuracy, then extraction rate, then flexible
    accuracy (which still separates rewards when no completion uses the solution tags)."""
    d = row["dev"]
    if not d:
        return (1, 0.0, 0.0, 0.0, row["round"], row["id"])
    return (0, -d["accuracy"], -d["extraction_rate"], -d["flex_accuracy"], row["round"], row["id"])


def ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Evaluated candidates (the baseline excluded), best first by `rank_key`."""
    scored = [r for r in rows if r["origin"] != BASELINE and r["state"] == "evaluated" and r["dev"]]
    return sorted(scored, key=rank_key)


def history(store: Store, seed: int) -> list[HistoryEntry]:
    """What the proposer may see: ranked evaluated candidates first, then the rest (rejected, failed)."""
    rows = leaderboard(store, seed)
    order = ranked(rows)
    # an infrastructure failure (crash, OOM, lost node) said nothing about the reward: it is not shown as one
    rest = [r for r in rows if r["origin"] != BASELINE and r not in order and r["state"] != "infra_failed"]
    out = []
    for r in order + rest:
        c = store.candidate(r["id"])
        t = store.trial(trial_id_for(r["id"], seed))
        out.append(HistoryEntry(
            spec=Store.spec_of(c),  # type: ignore[arg-type]
            state=r["state"],
            reason=r["reason"],
            dev_accuracy=r["dev"]["accuracy"] if r["dev"] else None,
            dev_extraction_rate=r["dev"]["extraction_rate"] if r["dev"] else None,
            dev_ci95=list(r["dev"]["ci95"]) if r["dev"] else None,
            dev_n=r["dev"]["n"] if r["dev"] else None,
            flags=r["flags"],
            curves=curve_summary(t.curves) if t else {},
            shift=r["shift"] or {},
        ))
    return out


def feedback_record(store: Store, seed: int, round: int, top: int, bottom: int) -> dict[str, Any]:
    """What the next round is told: best and worst candidates so far with metrics and curves; failures."""
    rows = leaderboard(store, seed)
    order = ranked(rows)

    def brief(r: dict[str, Any]) -> dict[str, Any]:
        t = store.trial(trial_id_for(r["id"], seed)) if r["origin"] != BASELINE else None
        return {
            "id": r["id"], "name": r["name"], "round": r["round"], "dev": r["dev"], "flags": r["flags"],
            "curves": curve_summary(t.curves) if t else {}, "shift": r["shift"], "steps": r["steps"],
            "rung": r["rung"], "stopped": r["stopped"],
        }

    bottom_rows = [r for r in order[::-1] if r not in order[:top]][:bottom]
    return {
        "round": round,
        "baseline": {"dev": rows[0]["dev"], "flags": rows[0]["flags"], "shift": rows[0]["shift"]},
        "base_model": base_model_status(store, seed)["dev"],
        "top": [brief(r) for r in order[:top]],
        "bottom": [brief(r) for r in bottom_rows],
        "failures": [
            {"id": r["id"], "name": r["name"], "state": r["state"], "reason": r["reason"], "steps": r["steps"],
             "rung": r["rung"]}
            for r in rows
            if r["state"] in ("rejected", "failed", "quarantined", "dropped")
        ],
    }
