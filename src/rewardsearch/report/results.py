"""Everything the report shows, computed from the store: the `results.json` object.

`build_results` reads the run store and returns one JSON-ready dict. The page (`report/html.py`), the Markdown
(`report/markdown.py`) and the `ensemble` command's closing table all render this dict and compute nothing of
their own, so every number on the page is in `results.json` beside the vectors it came from.

Families of paired comparisons (each corrected on its own, Bonferroni and Holm, see `evaluate/stats.py`):
- `dev-candidates` (exploratory): the baseline and the `stats.matrix_top` best candidates of the search, pairwise,
  on dev (one trial each, the run's seed). Chosen after looking (top by dev) and tested on the very dev vectors
  that chose them, so its p-values are descriptive: the page marks them apart and no verdict reads them;
- `test-final` (confirmatory): every arm of the final stage with test evaluations, pairwise on test over the
  fresh seeds both arms have (seeds and items both random, `seed_item_test`).

The verdict (`decide`) reads only `test-final` and the one ranking of arms (`search/finals.rank_arms`).
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from collections import defaultdict
from importlib import metadata
from pathlib import Path
from typing import Any

from rewardsearch.config import Config
from rewardsearch.evaluate.stats import (
    SEED_ITEM,
    BootstrapSettings,
    Comparison,
    align,
    bootstrap_ci,
    compare,
    correct_family,
    seed_summary,
    wilson_interval,
)
from rewardsearch.search.finals import arm_accuracy, arm_seeds, arm_trial_id, rank_arms
from rewardsearch.search.ranking import BASELINE, leaderboard, ranked, trial_id_for
from rewardsearch.search.status import run_status
from rewardsearch.store import ArmRecord, EvalRecord, Store, TrialRecord

SCHEMA = "rewardsearch.results/1"


def effective_config(store: Store) -> Config:
    """The run's config with the final stage's overrides (what `ensemble` last ran with), else the run's own."""
    blob = store.get_meta("final_config") or store.get_meta("config") or {}
    return Config.model_validate(blob)


def _labels(store: Store, arms: list[ArmRecord], seeds: list[int]) -> dict[str, tuple[str, list[str]]]:
    """trial id -> (label, arm ids)."""
    names = {c["id"]: c["name"] for c in store.candidates()}
    out: dict[str, tuple[str, list[str]]] = {}
    for t in store.trials():
        if t.kind == "baseline":
            out[t.id] = (BASELINE, [])
        elif t.candidate_id:
            out[t.id] = (names.get(t.candidate_id, t.candidate_id), [])
        else:
            out[t.id] = (t.id, [])
    for a in arms:
        for s in seeds:
            tid = arm_trial_id(a, s)
            label, ids = out.get(tid, (a.label, []))
            if a.kind != "single" and a.strategy != "base":
                label = a.label if not ids else f"{label} = {a.label}"
            out[tid] = (label, ids + [a.id])
    return out


def _evaluation(e: EvalRecord, label: str, arms: list[str], kind: str, seed: int | None,
                settings: BootstrapSettings) -> dict[str, Any]:
    return {
        "trial": e.trial_id, "label": label, "kind": kind, "seed": seed, "arms": arms, "split": e.split,
        "n": e.n, "item_ids": e.item_ids, "correct": e.correct, "accuracy": e.accuracy,
        # the key keeps its contract name; the level is `stats.confidence` (ci_level), not the stored 95%
        "ci95": wilson_interval(sum(e.correct), len(e.correct), settings.confidence), "ci95_method": "wilson",
        "ci_level": settings.confidence, "bootstrap": bootstrap_ci(e.correct, settings),
        "extraction_rate": e.extraction_rate, "flex_accuracy": e.flex_accuracy,
    }


def _side(store: Store, tids: list[str], split: str) -> list[tuple[str, list[str], list[int]]]:
    out = []
    for tid in tids:
        e = store.eval(tid, split)
        if e is not None:
            out.append((tid, e.item_ids, e.correct))
    return out


def _arm_split(store: Store, arm: ArmRecord, seeds: list[int], split: str,
               settings: BootstrapSettings) -> dict[str, Any] | None:
    trials = [(s, arm_trial_id(arm, s)) for s in seeds]
    evals = [(s, tid, e) for s, tid in trials if (e := store.eval(tid, split)) is not None]
    if not evals:
        return None
    items, means, _ = align([(e.item_ids, e.correct) for _, _, e in evals])
    return {
        "trials": [tid for _, tid, _ in evals],
        "seeds": [s for s, _, _ in evals],
        "per_seed": [e.accuracy for _, _, e in evals],
        "seed_summary": seed_summary([e.accuracy for _, _, e in evals]),
        "n": len(items),
        "accuracy": float(means.mean()) if len(items) else None,   # mean over items of the per-item seed mean
        "bootstrap": bootstrap_ci(means, settings),
        "extraction_rate": sum(e.extraction_rate for _, _, e in evals) / len(evals),
        # last number anywhere: a diagnostic beside strict accuracy (it moves while no completion uses the tags)
        "flex_accuracy": sum(e.flex_accuracy for _, _, e in evals) / len(evals),
    }


def _comparison_dict(c: Comparison, labels: dict[str, str]) -> dict[str, Any]:
    d = {k: getattr(c, k) for k in Comparison.__dataclass_fields__}
    d["a_label"], d["b_label"] = labels.get(c.a, c.a), labels.get(c.b, c.b)
    return d


def _dev_family(store: Store, cfg: Config, settings: BootstrapSettings) -> tuple[list[str], list[Comparison]]:
    rows = leaderboard(store, cfg.seed)
    units = []
    base = trial_id_for(None, cfg.seed)
    order = ranked(rows)[: cfg.stats.matrix_top]
    for r in order:
        units.append(trial_id_for(r["id"], cfg.seed))
    if store.eval(base, "dev") is not None:
        units.append(base)
    comps = []
    for i, a in enumerate(units):
        for b in units[i + 1:]:
            comps.append(compare(a, b, "dev", "dev-candidates", _side(store, [a], "dev"),
                                 _side(store, [b], "dev"), settings, seeds=[cfg.seed]))
    correct_family(comps)
    return units, comps


def _test_family(store: Store, arms: list[ArmRecord], seeds: list[int], settings: BootstrapSettings,
                 ) -> tuple[list[str], list[Comparison]]:
    have = {a.id: {s for s in seeds if store.eval(arm_trial_id(a, s), "test") is not None} for a in arms}
    units = [a for a in arms if have[a.id]]
    comps = []
    for i, a in enumerate(units):
        for b in units[i + 1:]:
            common = sorted(have[a.id] & have[b.id])
            if not common or [arm_trial_id(a, s) for s in common] == [arm_trial_id(b, s) for s in common]:
                continue  # nothing to compare, or one reward set reached by two strategies (same trials)
            comps.append(compare(
                a.id, b.id, "test", "test-final",
                _side(store, [arm_trial_id(a, s) for s in common], "test"),
                _side(store, [arm_trial_id(b, s) for s in common], "test"), settings, seeds=common,
            ))
    correct_family(comps)
    return [a.id for a in units], comps


def _find(comps: list[dict[str, Any]], a: str, b: str) -> dict[str, Any] | None:
    """The comparison of a and b, oriented so that `a` is the first side."""
    for c in comps:
        if c["a"] == a and c["b"] == b:
            return c
        if c["a"] == b and c["b"] == a:
            flipped = dict(c)
            flipped.update(a=a, b=b, a_label=c["b_label"], b_label=c["a_label"], n01=c["n10"], n10=c["n01"],
                           a_trials=c["b_trials"], b_trials=c["a_trials"], diff=0.0 - c["diff"],
                           per_seed_diff=[0.0 - x for x in c["per_seed_diff"]],
                           ci=[0.0 - c["ci"][1], 0.0 - c["ci"][0]] if c["ci"] else None)
            return flipped
    return None


VERDICTS = ("winner", "reversed", "tied", "unreplicated", "not compared", "only arm", "incomplete")


def decide(ranked_arms: list[dict[str, Any]], comps: list[dict[str, Any]], split: str, alpha: float,
           final_done: bool) -> dict[str, Any] | None:
    """The verdict: the first of `ranked_arms` (the order of `rank_arms`) against the second, on `comps` (the
    test-final family). A winner needs a finished final stage, two or more seeds a side (`seed_item_test`),
    Holm p < alpha and a positive difference of that same tested statistic. Significant the other way: "reversed"
    (the arm ranked first is worse), never "tied"."""
    if not ranked_arms:
        return None
    top = ranked_arms[0]
    out: dict[str, Any] = {"arm": top["id"], "label": top["label"], "kind": top["kind"], "selected_on": split,
                           "alpha": alpha, "runner_up": None, "runner_up_label": None, "comparison": None}
    if not final_done:
        out.update(verdict="incomplete", message="No winner: the final stage has not finished; arms so far are "
                                                 "listed below, but none is declared best from part of them.")
        return out
    if len(ranked_arms) < 2:
        out.update(verdict="only arm", message=f"Only one arm was evaluated: {top['label']}.")
        return out
    second = ranked_arms[1]
    c = _find(comps, top["id"], second["id"])
    out.update(runner_up=second["id"], runner_up_label=second["label"], comparison=c)
    a, b = top["label"], second["label"]
    if c is None:
        out.update(verdict="not compared", message=f"No winner: {a} and {b} have no test seeds in common.")
    elif c["test"] != SEED_ITEM:
        out.update(verdict="unreplicated", message=(
            f"No winner: fewer than two training seeds per arm, so seed-to-seed noise is unmeasured and "
            f"{a} vs {b} (diff {c['diff']:+.3f}, Holm p = {c['p_holm']:.3g}) is a claim about two checkpoints."))
    elif c["p_holm"] < alpha and c["diff"] > 0:
        out.update(verdict="winner", message=(
            f"Winner: {a} ({top['kind']}), ranked first on {split}; on test it beats {b} by {c['diff']:+.3f} "
            f"(seeds and items random), Holm p = {c['p_holm']:.3g} < {alpha}."))
    elif c["p_holm"] < alpha:
        out.update(verdict="reversed", message=(
            f"No winner: {a} ranks first on {split}, but on test the runner-up {b} is significantly better "
            f"(diff {c['diff']:+.3f}, Holm p = {c['p_holm']:.3g} < {alpha})."))
    else:
        out.update(verdict="tied", message=(
            f"No winner: {a} and {b} are tied on test (diff {c['diff']:+.3f}, Holm p = {c['p_holm']:.3g}, "
            f"alpha {alpha})."))
    if top["kind"] == "control" and out["verdict"] in ("winner", "tied"):
        out["note"] = f"the arm ranked first on {split} is a control: the searched rewards did not rank above it"
    return out


def _rounds(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_round: dict[int, list[float]] = defaultdict(list)
    for r in rows:
        if r["origin"] != BASELINE and r["dev"]:
            by_round[r["round"]].append(r["dev"]["accuracy"])
    out = []
    for rnd in sorted(by_round):
        s = seed_summary(by_round[rnd])
        out.append({"round": rnd, "n": s["n_seeds"], "mean": s["mean"], "best": s["max"], "worst": s["min"],
                    "sd": s["sd"], "accuracies": by_round[rnd]})
    return out


def _curve_series(curves: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-reward series from TRL's log history: raw means where a z-score wrapper logged them."""
    names = sorted({k.split("/")[1] for row in curves for k in row
                    if k.startswith("rewards/") and k.endswith("/mean")})
    out: dict[str, Any] = {"step": [row.get("step") for row in curves if "step" in row], "rewards": {}}
    for n in names:
        raw = any(f"rewards/{n}/raw_mean" in row for row in curves)
        key = f"rewards/{n}/raw_mean" if raw else f"rewards/{n}/mean"
        out["rewards"][n] = [row.get(key) for row in curves if "step" in row]
    for k in ("reward", "reward_std", "frac_reward_zero_std"):
        out[k] = [row.get(k) for row in curves if "step" in row]
    return out


def _curves(store: Store, cfg: Config, rows: list[dict[str, Any]], arms: list[dict[str, Any]]) -> list[dict[str, Any]]:
    picks = [(r["name"], trial_id_for(r["id"], cfg.seed)) for r in ranked(rows)[:3]]
    ens = sorted((a for a in arms if a["kind"] == "ensemble" and a["dev"] and a["rank"]), key=lambda a: a["rank"])
    if ens:
        best = ens[0]
        picks.append((f"ensemble {best['label']}", best["dev"]["trials"][0]))
    out = []
    for label, tid in picks:
        t = store.trial(tid)
        if t and t.curves:
            out.append({"label": label, "trial": tid, **_curve_series(t.curves)})
    return out


def _disagreement(store: Store, cfg: Config, winner: dict[str, Any] | None, arm_rows: list[dict[str, Any]],
                  rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Items on which the top two differ: the winner and runner-up arms on test, else the top two candidates on dev."""
    if winner and winner.get("runner_up"):
        by_id = {a["id"]: a for a in arm_rows}
        a, b, split = by_id[winner["arm"]], by_id[winner["runner_up"]], "test"
        if not (a["test"] and b["test"]):
            return None
        common = sorted(set(a["test"]["seeds"]) & set(b["test"]["seeds"]))
        ta = [tid for s, tid in zip(a["test"]["seeds"], a["test"]["trials"], strict=True) if s in common]
        tb = [tid for s, tid in zip(b["test"]["seeds"], b["test"]["trials"], strict=True) if s in common]
        la, lb = a["label"], b["label"]
    else:
        top = ranked(rows)[:2]
        if len(top) < 2:
            return None
        ta, tb = [trial_id_for(top[0]["id"], cfg.seed)], [trial_id_for(top[1]["id"], cfg.seed)]
        la, lb, split = top[0]["name"], top[1]["name"], "dev"
    sa, sb = _side(store, ta, split), _side(store, tb, split)
    if not sa or not sb:
        return None
    items, va, vb = align([(i, c) for _, i, c in sa], [(i, c) for _, i, c in sb])
    assert vb is not None
    questions = _questions(cfg, split)
    diff = []
    for item, x, y in zip(items, va, vb, strict=True):
        if x != y:
            q = questions.get(item)
            diff.append({"item": item, "a": float(x), "b": float(y), "question": q[0] if q else None,
                         "gold": q[1] if q else None})
    return {"a": la, "b": lb, "split": split, "a_trials": ta, "b_trials": tb, "n": len(items),
            "n_a_only": sum(1 for d in diff if d["a"] > d["b"]), "n_b_only": sum(1 for d in diff if d["b"] > d["a"]),
            "items": diff}


def _questions(cfg: Config, split: str) -> dict[str, tuple[str, str]]:
    from rewardsearch.tasks import load_task

    try:
        task = load_task(cfg.task, cfg.seed)
        return {p.id: (p.question, p.answer) for p in task.split(split)}  # type: ignore[arg-type]
    except (OSError, ValueError, ImportError) as exc:  # data not on this machine: ids only
        return {"_error": (str(exc), "")}


def _screening(store: Store, cfg: Config) -> dict[str, Any]:
    """What successive halving and the pre-screen spent and saved (`screen/halving.py`, `screen/prescreen.py`).

    `steps_trained` sums the optimizer steps of the search's candidate trials; `steps_full_budget` is what the same
    trials would have trained without halving (each `screen.steps`). The pre-screen's saving is an estimate: each
    candidate it rejected counted at the mean process time of the candidate trials that did run (all their rungs).
    """
    cands = [t for t in store.trials("candidate") if t.round > 0 and t.id.endswith(f"-s{cfg.seed}")
             and store.rungs(trial_id=t.id)]
    steps = sum(int(t.metrics.get("steps") or 0) for t in cands)
    rungs = store.rungs()
    by_rung: dict[int, dict[str, Any]] = {}
    for x in rungs:
        b = by_rung.setdefault(x.rung, {"rung": x.rung, "steps": x.steps, "trials": 0, "job_s": 0.0, "decisions": {}})
        b["trials"] += 1
        b["job_s"] += x.wall_s or 0.0
        b["decisions"][x.decision or "pending"] = b["decisions"].get(x.decision or "pending", 0) + 1
    checks = [(c, ch) for c in store.candidates() for ch in store.checks(c["id"]) if ch["stage"] == "prescreen"]
    rejected = [{"name": c["name"], "reason": ch["reason"], "stats": ch["details"]} for c, ch in checks if not ch["ok"]]
    would = [{"name": c["name"], "reason": ch["details"].get("would_reject"), "stats": ch["details"]}
             for c, ch in checks if ch["ok"] and ch["details"].get("would_reject")]
    per_trial = [t.metrics.get("job_wall_s") or 0.0 for t in cands]
    mean_trial = sum(per_trial) / len(per_trial) if per_trial else None
    return {
        "rungs": cfg.screen.schedule(), "keep": cfg.screen.keep, "keep_within_noise": cfg.screen.keep_within_noise,
        "rung_dev_size": cfg.screen.rung_dev_size or cfg.eval.dev_size,
        "candidate_trials": len(cands), "steps_trained": steps, "steps_full_budget": len(cands) * cfg.screen.steps,
        "by_rung": [by_rung[k] for k in sorted(by_rung)],
        "early_stopped": [t.id for t in cands if (t.reason or "").startswith("early stop")],
        "prescreen": {
            "enabled": cfg.prescreen.enabled, "pool": store.get_meta("prescreen_pool"), "checked": len(checks),
            "reject": cfg.prescreen.reject, "rejected": rejected, "would_reject": would,
            "mean_candidate_trial_s": mean_trial,
            "est_saved_s": len(rejected) * mean_trial if mean_trial is not None else None,
        },
    }


def trial_job_s(t: TrialRecord) -> float:
    """A trial's process seconds, the cost's unit: its jobs (every rung segment) plus a final-stage evaluation."""
    return float((t.metrics.get("job_wall_s") or 0.0) + (t.metrics.get("final_eval_wall_s") or 0.0))


def _cost(store: Store) -> dict[str, Any]:
    by_kind: dict[str, dict[str, float]] = defaultdict(lambda: {"trials": 0, "train_s": 0.0, "job_s": 0.0})
    devices: set[str] = set()
    for t in store.trials():
        k = by_kind[t.kind]
        k["trials"] += 1
        k["train_s"] += t.wall_s or 0.0
        k["job_s"] += trial_job_s(t)
        if t.metrics.get("device"):
            devices.add(str(t.metrics["device"]))
    eval_s = sum(e.wall_s or 0.0 for e in store.evals())
    proposer_s = sum(e.get("wall_s") or 0.0 for e in store.events("proposed"))
    calls = store.proposer_calls()
    usage = {
        "prompt_tokens": float(sum(c["prompt_tokens"] or 0 for c in calls)),
        "completion_tokens": float(sum(c["completion_tokens"] or 0 for c in calls)),
        "cost_usd": float(sum(c["cost_usd"] or 0.0 for c in calls)),
    }
    run_wall = sum(e.get("wall_s") or 0.0 for e in store.events("run_finished"))
    final_wall = sum(e.get("wall_s") or 0.0 for e in store.events("final_finished"))
    total_job = sum(k["job_s"] for k in by_kind.values())
    return {
        "devices": sorted(devices), "by_kind": dict(by_kind), "trial_job_s": total_job,
        "accelerator_s": total_job if "cuda" in devices else 0.0, "eval_generation_s": eval_s,
        "proposer_wall_s": proposer_s, "proposer_calls": len(calls), "proposer_usage": usage,
        "proposer_calls_table": bool(calls), "search_wall_s": run_wall,
        "final_stage_wall_s": final_wall,
    }


def _git_commit() -> dict[str, Any]:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10)
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def _environment(store: Store, cfg: Config, seeds: list[int]) -> dict[str, Any]:
    versions = {}
    for pkg in ("rewardsearch", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "numpy", "scipy",
                "statsmodels", "matplotlib"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    trial_envs = []
    for t in store.trials():
        env = t.metrics.get("env")
        if env is None and t.dir and (Path(t.dir) / "train.json").is_file():
            try:
                env = json.loads((Path(t.dir) / "train.json").read_text()).get("env")
            except (OSError, ValueError):
                env = None
        if env and env not in trial_envs:
            trial_envs.append(env)
    return {
        "report_python": platform.python_version(), "report_platform": platform.platform(),
        "report_versions": versions, "trial_environments": trial_envs,
        "gpus": sorted({e["gpu"] for e in trial_envs if e.get("gpu")}),
        "seed": cfg.seed, "final_seeds": seeds, "bootstrap_seed": cfg.seed,
        "config_hash": store.get_meta("config_hash"), "final_config_hash": store.get_meta("final_config_hash"),
        "git": _git_commit(), "argv": store.get_meta("argv"), "model_dir": store.get_meta("model_dir"),
    }


def build_results(run_dir: Path, store: Store) -> dict[str, Any]:
    cfg = effective_config(store)
    settings = BootstrapSettings(cfg.stats.bootstrap_resamples, cfg.stats.confidence, cfg.seed)
    seeds = arm_seeds(cfg)
    split = cfg.ensemble.select_split
    status = run_status(run_dir, store)
    rows = status["candidates"]
    arms = store.arms()
    labels = _labels(store, arms, seeds)
    kinds = {t.id: (t.kind, t.seed) for t in store.trials()}
    evaluations = [
        _evaluation(e, labels.get(e.trial_id, (e.trial_id, []))[0], labels.get(e.trial_id, ("", []))[1],
                    kinds.get(e.trial_id, ("?", None))[0], kinds.get(e.trial_id, ("?", None))[1], settings)
        for e in store.evals()
    ]
    # search candidates: bootstrap CIs beside the stored Wilson interval, for the leaderboard
    boot = {(ev["trial"], ev["split"]): ev["bootstrap"] for ev in evaluations}
    for r in rows:
        tid = trial_id_for(None if r["origin"] == BASELINE else r["id"], cfg.seed)
        for sp in ("dev", "test"):
            if r[sp]:
                r[sp]["bootstrap"] = boot.get((tid, sp))
                ev = store.eval(tid, sp)
                if ev is not None:  # the stored interval is 95%; the report's level is stats.confidence
                    r[sp]["ci95"] = wilson_interval(sum(ev.correct), len(ev.correct), settings.confidence)
    order = rank_arms(arms, {a.id: arm_accuracy(store, a, seeds, split) for a in arms})
    rank = {a.id: (i, score) for i, (a, score) in enumerate(order, 1)}
    arm_rows = []
    for a in arms:
        arm_rows.append({
            "id": a.id, "label": a.label, "kind": a.kind, "strategy": a.strategy, "aliases": a.aliases,
            "members": a.members, "member_names": [s.get("name", m) for s, m in zip(a.specs, a.members, strict=False)],
            "normalize": a.normalize, "meta": a.meta,
            "dev": _arm_split(store, a, seeds, "dev", settings), "test": _arm_split(store, a, seeds, "test", settings),
            # position in the one ranking (`rank_arms`, on the selection split); None: not ranked (no score, or
            # a random draw that built an ensemble's set)
            "rank": rank.get(a.id, (None, None))[0], "selection_score": rank.get(a.id, (None, None))[1],
        })
    dev_units, dev_comps = _dev_family(store, cfg, settings)
    test_units, test_comps = _test_family(store, arms, seeds, settings)
    unit_labels = {tid: labels.get(tid, (tid, []))[0] for tid in dev_units} | {a.id: a.label for a in arms}
    comparisons = [_comparison_dict(c, unit_labels) for c in dev_comps + test_comps]
    test_dicts = [c for c in comparisons if c["family"] == "test-final"]
    ranked_rows = sorted((r for r in arm_rows if r["rank"]), key=lambda r: r["rank"])
    winner = decide(ranked_rows, test_dicts, split, cfg.stats.alpha, store.get_meta("final_status") == "done")
    families = {
        "dev-candidates": {"split": "dev", "units": dev_units, "m": len(dev_comps), "confirmatory": False,
                           "marker": "°", "role": "exploratory: candidates chosen by their dev accuracy and tested "
                                                  "on the same dev vectors (one seed each); not read by the verdict"},
        "test-final": {"split": "test", "units": test_units, "m": len(test_comps), "confirmatory": True,
                       "marker": "*", "role": "confirmatory: final arms on test over fresh seeds; the verdict "
                                              "reads this family"},
    }
    for f in families.values():
        f["alpha"] = cfg.stats.alpha
        f["bonferroni_threshold"] = cfg.stats.alpha / f["m"] if f["m"] else None
    return {
        "schema": SCHEMA,
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run_dir": str(run_dir),
        "selection_split": cfg.ensemble.select_split,
        "status": status,
        "final_status": store.get_meta("final_status"),
        "settings": {
            "bootstrap": settings.to_dict(), "alpha": cfg.stats.alpha,
            "test": "paired, on matched seeds: two or more seeds a side, a t test of the mean difference with seeds "
                    "and items both random (seed part + item part of the variance, Satterthwaite df); one seed, "
                    "exact McNemar. Bonferroni and Holm within each family on that p. n01/n10, p_exact, p_chi2_cc: "
                    "McNemar's table on per-item seed means, descriptive when there are several seeds",
            "confidence": cfg.stats.confidence, "matrix_top": cfg.stats.matrix_top,
            "normalize": cfg.ensemble.normalize, "seeds": seeds, "search_seed": cfg.seed,
        },
        "evaluations": evaluations,
        "arms": arm_rows,
        "families": families,
        "comparisons": comparisons,
        "winner": winner,
        "rounds": _rounds(rows),
        "curves": _curves(store, cfg, rows, arm_rows),
        "disagreement": _disagreement(store, cfg, winner, arm_rows, rows),
        "cost": {**_cost(store), "screening": _screening(store, cfg)},
        "environment": _environment(store, cfg, seeds),
    }


def final_table(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The closing table: best single, best ensemble (both by the arms' `rank`), base-only, every random-k draw of
    the best ensemble's size (and random search), on test."""
    arms = [a for a in results["arms"] if a["test"]]

    def best(kind: str) -> dict[str, Any] | None:
        ranked_ = sorted((a for a in arms if a["kind"] == kind and a["rank"]), key=lambda a: a["rank"])
        return ranked_[0] if ranked_ else None

    best_single, best_ens = best("single"), best("ensemble")
    picks: list[tuple[str, dict[str, Any] | None]] = [("best single", best_single), ("best ensemble", best_ens)]
    picks.append(("base only", next((a for a in arms if a["strategy"] == "base"), None)))
    randoms = [a for a in arms if a["strategy"] == "random-k"]
    if best_ens is not None:
        matched = [a for a in randoms if len(a["members"]) == len(best_ens["members"])]
        randoms = matched or randoms
    if not randoms:
        picks.append(("random-k", None))
    for r in randoms:
        draw = r["meta"].get("draw", 1)
        picks.append((f"random-k (draw {draw})" if len(randoms) > 1 else "random-k", r))
    rs = next((a for a in arms if a["strategy"] == "random-search"), None)
    if rs is not None:
        picks.append(("random search", rs))
    comps = [c for c in results["comparisons"] if c["family"] == "test-final"]
    base = picks[2][1]
    keys = ("diff", "n01", "n10", "p_exact", "test", "p", "p_holm", "ci")
    out = []
    for role, a in picks:
        if a is None:
            continue
        t = a["test"]
        vs_ens = _find(comps, a["id"], best_ens["id"]) if best_ens and a is not best_ens else None
        vs_base = _find(comps, a["id"], base["id"]) if base and a is not base else None
        out.append({
            "role": role, "arm": a["id"], "label": a["label"], "k": len(a["members"]), "seeds": t["seeds"],
            "test_accuracy": t["accuracy"], "seed_sd": t["seed_summary"]["sd"], "ci95_bca": t["bootstrap"]["bca"],
            "test_flex_accuracy": t.get("flex_accuracy"), "test_extraction_rate": t.get("extraction_rate"),
            "ci95_percentile": t["bootstrap"]["percentile"],
            "vs_best_ensemble": vs_ens and {k: vs_ens[k] for k in keys},
            "vs_base": vs_base and {k: vs_base[k] for k in keys},
        })
    return out
