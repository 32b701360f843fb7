"""Successive halving and the pre-screen replayed on one run in which every candidate trained the full budget and
stopped at every rung to be evaluated there (issue 10; `scripts/gpu_halving.sh` makes such a run):

    python benchmarks/halving_replay.py RUN_DIR [--keep 0.25] [--within-noise] [--name NAME]

The run must have `screen.keep=1.0` (every trial promoted at every rung) and `prescreen.reject=false` (the
pre-screen's verdicts recorded, not applied). A halving run of the same candidates and seed would train each trial
exactly as this one did up to the rung where it stops (a promoted trial continues from its checkpoint: adapter,
optimizer, scheduler and RNG, `tests/test_halving.py`), and its promotions read only the rung results, so they are
replayed here with the search's own rule (`screen/halving.py:promote`) on the stored rung rows. What the replay
cannot give is the halving run's own timing: its trials would share the GPU with fewer others at the last rung.

Cost, in trial process seconds (what the report's cost counts), of each arm:
- halving: the pre-screen pool's job, then for each candidate the pre-screen passes, the measured job seconds of
  every rung segment it reaches; plus the baseline's and the base model's jobs.
- full budget: each candidate's measured training seconds plus one job's non-training overhead (start-up and the
  final evaluation), taken from the baseline, which trained its whole budget in one job in the same run; plus the
  same baseline and base-model jobs. The run's own measured total, restarts at every rung included, is reported
  beside it (`full_measured_s`): the replay's full cost does not charge the full arm for rungs it would not have.
The top k of each arm is the leaderboard's own order (`search/ranking.py:rank_key`) on the full dev evaluation;
found is counted by `halving_vs_full.found_in` (a miss within one standard error of the full run's k-th place
counts). Candidates without a record at every rung (a trial interrupted at the end of a device call) are left out
of both arms and listed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import write_result  # noqa: E402
from halving_vs_full import found_in  # noqa: E402

from rewardsearch.evaluate.stats import BootstrapSettings  # noqa: E402
from rewardsearch.report.results import build_results, effective_config, trial_job_s  # noqa: E402
from rewardsearch.screen.halving import PROMOTED, RungResult, promote  # noqa: E402
from rewardsearch.search.ranking import rank_key  # noqa: E402
from rewardsearch.store import Store  # noqa: E402


def _spearman(xs: list[float], ys: list[float]) -> float | None:
    from scipy.stats import spearmanr

    if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    return float(spearmanr(xs, ys).statistic)


def replay(run_dir: Path, keep: float, within_noise: bool, prescreen: bool, k: int = 5) -> dict[str, Any]:
    """One halving variant replayed on the run (see the module docstring)."""
    store = Store.in_dir(run_dir)
    cfg = effective_config(store)
    schedule = cfg.screen.schedule()
    if len(schedule) < 2:
        raise SystemExit(f"{run_dir}: screen.rungs={cfg.screen.rungs}: the run has no rung below the last to replay")
    if any(cfg.screen.keep_at(i) < 1.0 for i in range(len(schedule) - 1)):
        raise SystemExit(f"{run_dir}: screen.keep={cfg.screen.keep}: every rung must promote everyone (keep=1.0)")
    if cfg.prescreen.enabled and cfg.prescreen.reject:
        raise SystemExit(f"{run_dir}: prescreen.reject=true: the rejected candidates did not train (need false)")
    rows = build_results(run_dir, store)["status"]["candidates"]
    base = next(r for r in rows if r["origin"] == "baseline")
    cands = [r for r in rows if r["origin"] != "baseline"]
    rung_rows = {r["id"]: {x.rung: x for x in store.rungs(trial_id=r["trial"]["id"])} for r in cands if r["trial"]}
    complete = [r for r in cands if r["dev"] and all(
        (x := rung_rows.get(r["id"], {}).get(i + 1)) is not None and x.state == "ok" for i in range(len(schedule)))]
    left_out = sorted(r["name"] for r in cands if r not in complete)
    would_reject = {}
    for r in complete:
        for ch in store.checks(r["id"]):
            if ch["stage"] == "prescreen" and ch["details"].get("would_reject"):
                would_reject[r["id"]] = ch["details"]["would_reject"]
    trials = {t.id: t for t in store.trials()}
    settings = BootstrapSettings(cfg.stats.bootstrap_resamples, cfg.stats.confidence, cfg.seed)

    alive = [r for r in complete if not (prescreen and r["id"] in would_reject)]
    reached = {r["id"]: 1 for r in alive}
    decisions: list[dict[str, Any]] = []
    for i in range(len(schedule) - 1):
        res = [RungResult(r["id"], x.item_ids, x.correct, x.accuracy or 0.0, x.extraction_rate or 0.0,
                          x.flex_accuracy or 0.0, r["round"]) for r in alive for x in [rung_rows[r["id"]][i + 1]]]
        decided = promote(res, keep, within_noise, cfg.stats.alpha, settings)
        decisions.append({"rung": i + 1, "steps": schedule[i], "trials": len(res),
                          "promoted": sum(w == PROMOTED for w, _ in decided.values())})
        alive = [r for r in alive if decided[r["id"]][0] == PROMOTED]
        for r in alive:
            reached[r["id"]] = i + 2
    h_top = [r["id"] for r in sorted(alive, key=rank_key)[:k]]
    f_ranked = sorted(complete, key=rank_key)
    got = found_in(f_ranked, h_top, k)

    def job(tid: str) -> float:
        return trial_job_s(trials[tid]) if tid in trials else 0.0

    b_trial = trials[base["trial"]["id"]]
    overhead = job(b_trial.id) - float(b_trial.wall_s or 0.0)   # start-up + final evaluation of one whole job
    shared = job(b_trial.id) + sum(job(t.id) for t in trials.values() if t.kind == "base-model")
    pool = float((store.get_meta("prescreen_pool") or {}).get("job_wall_s") or 0.0)
    h_cand = sum(float(rung_rows[c][j].wall_s or 0.0) for c, n in reached.items() for j in range(1, n + 1))
    f_cand = sum(float(trials[r["trial"]["id"]].wall_s or 0.0) + overhead for r in complete)
    f_measured = sum(job(r["trial"]["id"]) for r in complete)
    h_s, f_s = h_cand + shared + (pool if prescreen else 0.0), f_cand + shared
    names = {r["id"]: r["name"] for r in cands}
    first = [rung_rows[r["id"]][1].accuracy or 0.0 for r in complete]
    last = [r["dev"]["accuracy"] for r in complete]
    rank_of = {r["id"]: i for i, r in enumerate(f_ranked, 1)}
    dev_of = {r["id"]: r["dev"]["accuracy"] for r in complete}
    return {
        "keep": keep, "within_noise": within_noise, "prescreen": prescreen, "k": k, "rungs": schedule,
        "candidates": len(complete), "left_out": left_out, "rung_decisions": decisions,
        "steps": {"halving": sum(schedule[n - 1] for n in reached.values()), "full": len(complete) * schedule[-1]},
        "trial_s": {"halving": h_s, "full": f_s, "ratio": f_s / h_s if h_s else None,
                    "full_measured_s": f_measured + shared, "one_job_overhead_s": overhead,
                    "shared_s": shared, "prescreen_pool_s": pool if prescreen else 0.0},
        "full_top": [{"name": names[r["id"]], "dev": r["dev"]["accuracy"], "n": r["dev"]["n"]}
                     for r in f_ranked[:k]],
        "halving_top": [{"name": names[c], "full_budget_dev": dev_of[c], "full_budget_rank": rank_of[c]}
                        for c in h_top],
        "found": got["found"], "found_exact": got["found_exact"],
        "found_within_se": [names[c] for c in got["found_within_se"]], "kth_place": got["kth_place"],
        "prescreen_would_reject": [{"name": names[c], "reason": why, "full_budget_rank": rank_of[c],
                                    "full_budget_dev": dev_of[c],
                                    "would_be_top_k": rank_of[c] <= k} for c, why in would_reject.items()],
        "spearman_first_rung_vs_final": _spearman(first, last),
        "dev_accuracy_spread": {"min": min(last, default=None), "max": max(last, default=None)},
        "baseline_dev": (base["dev"] or {}).get("accuracy"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--keep", type=float, nargs="+", default=[0.25, 0.5])
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--name", default="halving-replay", help="the result's name: benchmarks/results/<date>-NAME.json")
    ap.add_argument("--what", default="", help="one line on the run (machine, protocol) for the result")
    a = ap.parse_args()
    if not (a.run / "run.sqlite").is_file():
        sys.exit(f"{a.run}: not a run directory (no run.sqlite)")
    variants = [replay(a.run, keep, noise, pre, a.k) for keep in a.keep for noise in (False, True)
                for pre in (True, False)]
    for v in variants:
        t = v["trial_s"]
        print(f"keep {v['keep']} within-noise {v['within_noise']!s:5} prescreen {v['prescreen']!s:5}: found "
              f"{v['found']}/{a.k} ({v['found_exact']} exact), trial s {t['halving']:.0f} vs {t['full']:.0f} "
              f"(x{t['ratio']:.2f}), steps {v['steps']['halving']} vs {v['steps']['full']}", file=sys.stderr)
    write_result(a.name, {"what": a.what, "run": str(a.run), "variants": variants,
                          "targets": {"ratio_at_least": 3.0, "found_at_least": 4}})


if __name__ == "__main__":
    main()
