"""Successive halving vs the full budget for every candidate (issue 10): GPU-seconds to find the top 5, and whether
halving found them. Two finished search directories of the same candidates and seeds: one with `screen.rungs` and
the pre-screen, one with every candidate trained to the end (`screen.rungs=[] prescreen.enabled=false`).

    python benchmarks/halving_vs_full.py runs/hvf/halving runs/hvf/full --machine "H200" > benchmarks/results/NAME.json

The full-budget top k is the leaderboard's own order (`search/ranking.py:rank_key`, the one rule). A halving
top-k member outside it counts as found when its full-budget accuracy is within one standard error (binomial, on
the dev items) of the full run's k-th place, as the issue asks. Cost: each run's trial process seconds (the
report's per-kind job seconds of the base model, baseline and candidates, plus the pre-screen pool's job; on the
accelerator when both runs trained on one). Pre-screen
rejections of the halving run are looked up in the full run: would any have made its top k?
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

from rewardsearch.report.results import build_results
from rewardsearch.search.ranking import rank_key
from rewardsearch.store import Store


def _evaluated(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Candidates with a full-budget dev evaluation, best first (the baseline is not a candidate)."""
    return sorted((r for r in rows if r["origin"] != "baseline" and r["dev"]), key=rank_key)


SEARCH_KINDS = ("base-model", "baseline", "candidate")   # a final stage, if either run had one, is not screening


def _search_seconds(res: dict[str, Any]) -> float:
    """Trial process seconds of the search (the report's per-kind cost) plus the pre-screen pool's job."""
    cost = res["cost"]
    pool = ((cost.get("screening") or {}).get("prescreen") or {}).get("pool") or {}
    return sum((cost["by_kind"].get(k) or {}).get("job_s", 0.0) for k in SEARCH_KINDS) + (pool.get("job_wall_s") or 0.0)


def found_in(f_ranked: list[dict[str, Any]], h_top: list[str], k: int) -> dict[str, Any]:
    """How many of the halving top k (ids) are the full budget's top k (`f_ranked`, best first), counting a miss
    whose full-budget dev accuracy is within one binomial standard error of the full run's k-th place as found."""
    f_top = [r["id"] for r in f_ranked[:k]]
    f_acc = {r["id"]: r["dev"]["accuracy"] for r in f_ranked}
    kth = f_ranked[k - 1]["dev"] if len(f_ranked) >= k else None
    se = math.sqrt(kth["accuracy"] * (1 - kth["accuracy"]) / kth["n"]) if kth and kth["n"] else None
    cutoff = kth["accuracy"] - se if kth and se is not None else None
    exact = [c for c in h_top if c in f_top]
    near = [c for c in h_top if c not in f_top and cutoff is not None and f_acc.get(c, -1.0) >= cutoff]
    return {"found": len(exact) + len(near), "found_exact": len(exact), "found_within_se": near,
            "kth_place": {"dev": kth["accuracy"] if kth else None, "n": kth["n"] if kth else None, "se": se,
                          "cutoff": cutoff}}


def compare(halving: dict[str, Any], full: dict[str, Any], k: int = 5) -> dict[str, Any]:
    """The comparison of two `build_results` records (see the module docstring)."""
    h_rows, f_rows = halving["status"]["candidates"], full["status"]["candidates"]
    names = {r["id"]: r["name"] for r in h_rows + f_rows}
    f_ranked = _evaluated(f_rows)
    common = {r["id"] for r in h_rows} & {r["id"] for r in f_rows}
    f_top = [r["id"] for r in f_ranked[:k]]
    h_top = [r["id"] for r in _evaluated(h_rows)[:k]]
    f_acc = {r["id"]: r["dev"]["accuracy"] for r in f_ranked}
    got = found_in(f_ranked, h_top, k)
    rejected = (halving["cost"].get("screening") or {}).get("prescreen", {}).get("rejected") or []
    by_name = {r["name"]: r["id"] for r in f_rows}
    pre = []
    for rej in rejected:
        cid = by_name.get(rej["name"])
        rank = next((i for i, r in enumerate(f_ranked, 1) if r["id"] == cid), None)
        pre.append({"name": rej["name"], "reason": rej["reason"], "full_budget_rank": rank,
                    "full_budget_dev": f_acc.get(cid) if cid else None,
                    "would_be_top_k": rank is not None and rank <= k})
    on_gpu = all(r["cost"]["accelerator_s"] for r in (halving, full))
    h_s, f_s = _search_seconds(halving), _search_seconds(full)
    return {
        "k": k,
        "candidates": {"halving": len([r for r in h_rows if r["origin"] != "baseline"]),
                       "full": len([r for r in f_rows if r["origin"] != "baseline"]),
                       "common": len(common - {"baseline"}),
                       "only_halving": sorted(names[c] for c in {r["id"] for r in h_rows} - common),
                       "only_full": sorted(names[c] for c in {r["id"] for r in f_rows} - common)},
        "full_top": [{"name": names[c], "dev": f_acc[c]} for c in f_top],
        "halving_top": [{"name": names[c], "full_budget_dev": f_acc.get(c)} for c in h_top],
        "kth_place": got["kth_place"], "found": got["found"], "found_exact": got["found_exact"],
        "found_within_se": [names[c] for c in got["found_within_se"]],
        "search_trial_s": {"halving": h_s, "full": f_s, "ratio": f_s / h_s if h_s else None,
                           "on_accelerator": on_gpu},
        "steps_trained": {"halving": (halving["cost"].get("screening") or {}).get("steps_trained"),
                          "full": (full["cost"].get("screening") or {}).get("steps_trained")},
        "prescreen_rejected": pre,
        "targets": {"ratio_at_least": 3.0, "found_at_least": 4},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("halving", type=Path)
    ap.add_argument("full", type=Path)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--machine", default=platform.node())
    a = ap.parse_args()
    for d in (a.halving, a.full):
        if not (d / "run.sqlite").is_file():
            sys.exit(f"{d}: not a run directory (no run.sqlite); expected the halving and the full-budget run")
    res = {d: build_results(d, Store.in_dir(d)) for d in (a.halving, a.full)}
    out = compare(res[a.halving], res[a.full], a.k)
    out = {"benchmark": "halving-vs-full", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": a.machine,
           "runs": {"halving": str(a.halving), "full": str(a.full)},
           "environment": res[a.halving]["environment"].get("trial_environments"), **out}
    json.dump(out, sys.stdout, indent=1)
    print()
    c = out["search_trial_s"]
    print(f"top {a.k}: found {out['found']} of {len(out['full_top'])} ({out['found_exact']} exact); trial s: halving "
          f"{c['halving']:.0f}, full {c['full']:.0f} (full / halving = {c['ratio'] or 0:.2f})", file=sys.stderr)


if __name__ == "__main__":
    main()
