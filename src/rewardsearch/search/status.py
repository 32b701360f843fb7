"""The run's status as one JSON-ready object (`rewardsearch status DIR --json`), read from the store only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rewardsearch.search.funnel import round_funnel
from rewardsearch.search.ranking import BASE_MODEL, BASELINE, base_model_status, leaderboard
from rewardsearch.store import Store


def run_status(run_dir: Path, store: Store) -> dict[str, Any]:
    cfg = store.get_meta("config") or {}
    seed = cfg.get("seed", 0)
    return {
        "run_dir": str(run_dir),
        "status": store.get_meta("status", "created"),
        "rounds_done": store.get_meta("rounds_done", 0),
        "rounds_total": cfg.get("search", {}).get("rounds"),
        "task": cfg.get("task", {}).get("name"),
        "model": cfg.get("model", {}).get("name"),
        "proposer": cfg.get("proposer", {}).get("name"),
        "config_hash": store.get_meta("config_hash"),
        "base_model": base_model_status(store, seed),   # the "before" of every trial's `shift`
        "candidates": leaderboard(store, seed),
        "funnel": round_funnel(store),                  # per round: proposed, parsed, passed checks, trained
        "proposer_server": store.get_meta("proposer_server"),  # what `proposer.serve` ran, if anything
        "executor": store.get_meta("executor"),         # where trials run: name, host, devices / cluster
        "preflight": store.get_meta("preflight"),
        "stopped": store.get_meta("stopped"),
        # what runs where now: only while a driver holds the run (a killed one's entries are stale)
        "running": _running(run_dir, store),
        "trials": [_placement(t) for t in store.trials()],
    }


def _running(run_dir: Path, store: Store) -> dict[str, Any]:
    import fcntl
    import time

    running = store.get_meta("running") or {}
    if not running or store.get_meta("status") != "running":
        return {}
    try:  # the driver holds .lock for as long as it runs (`search/loop.py:run_lock`)
        with open(run_dir / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fh, fcntl.LOCK_UN)
        return {}   # nobody holds it: the driver is gone, nothing of this runs
    except BlockingIOError:
        pass
    except OSError:
        return {}
    now = time.time()
    return {tid: {**r, "for_s": now - r.get("since", now)} for tid, r in running.items()}


def _placement(t: Any) -> dict[str, Any]:
    """One trial: where it ran, how long it queued and ran, every attempt (device, host, reason)."""
    m = t.metrics
    return {"id": t.id, "kind": t.kind, "state": t.state, "reason": t.reason, "infra": bool(m.get("infra")),
            "device": (m.get("placement") or {}).get("device"), "host": (m.get("placement") or {}).get("host"),
            "log": (m.get("placement") or {}).get("log"), "trained_on": m.get("device"), "wall_s": t.wall_s,
            "job_wall_s": m.get("job_wall_s"), "queue_s": m.get("queue_s"),
            "attempts": [{k: a.get(k) for k in ("attempt", "device", "host", "wall_s", "queue_s", "reason")}
                         for a in m.get("attempts") or []]}


def evaluations(store: Store) -> list[dict[str, Any]]:
    """Every stored evaluation with its per-item vector (what the statistics are recomputed from)."""
    labels = {c["id"]: c["name"] for c in store.candidates()}
    out = []
    for e in store.evals():
        t = store.trial(e.trial_id)
        label = (BASELINE if t and t.kind == "baseline" else BASE_MODEL if t and t.kind == BASE_MODEL
                 else labels.get(t.candidate_id if t else "", e.trial_id))
        out.append({
            "trial": e.trial_id, "label": label, "split": e.split, "item_ids": e.item_ids, "correct": e.correct,
            "accuracy": e.accuracy, "ci95": list(e.ci95), "extraction_rate": e.extraction_rate,
            "flex_accuracy": e.flex_accuracy, "mean_length": e.mean_length,
        })
    return out
