"""`benchmarks/halving_vs_full.py`: the top-k found by successive halving against the full budget, on two real
run stores (the synthetic finished search of conftest), one of them with its best candidate dropped early.

    python -m pytest tests/test_halving_vs_full.py -q
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("halving_vs_full", ROOT / "benchmarks" / "halving_vs_full.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_candidate_dropped_early_is_missed_and_the_cost_ratio_is_the_trial_seconds(tmp_path: Path) -> None:
    from conftest import make_synthetic_run

    from rewardsearch.report.results import build_results
    from rewardsearch.search.ranking import rank_key, trial_id_for
    from rewardsearch.store import Store

    mod = _module()
    full_dir, halving_dir = make_synthetic_run(tmp_path / "full"), make_synthetic_run(tmp_path / "halving")
    full = build_results(full_dir, Store.in_dir(full_dir))
    ranked = sorted((r for r in full["status"]["candidates"] if r["origin"] != "baseline" and r["dev"]), key=rank_key)
    assert len(ranked) == 6
    # halving dropped the full run's best at a rung (no full-budget evaluation) and trained the rest for a third
    store = Store.in_dir(halving_dir)
    store.void_trial(trial_id_for(ranked[0]["id"], 0), "dropped at rung 1/2")
    for t in store.trials():
        if t.kind == "candidate":
            t.metrics["job_wall_s"] = 4.0
            store.upsert_trial(t)
    halving = build_results(halving_dir, store)

    out = mod.compare(halving, full, k=5)
    assert [c["name"] for c in out["full_top"]] == [r["name"] for r in ranked[:5]]
    assert [c["name"] for c in out["halving_top"]] == [r["name"] for r in ranked[1:6]]
    assert out["found_exact"] == 4
    fifth = ranked[4]["dev"]
    se = math.sqrt(fifth["accuracy"] * (1 - fifth["accuracy"]) / fifth["n"])
    near = ranked[5]["dev"]["accuracy"] >= fifth["accuracy"] - se
    assert out["found"] == 4 + near and out["found_within_se"] == ([ranked[5]["name"]] if near else [])
    # every search trial of the synthetic run costs 12 s; halving's candidate trials 4 s (baseline unchanged)
    n_cand = sum(1 for t in Store.in_dir(full_dir).trials() if t.kind == "candidate")
    h, f = out["search_trial_s"]["halving"], out["search_trial_s"]["full"]
    assert f - h == 8.0 * n_cand and out["search_trial_s"]["ratio"] == f / h
    assert out["search_trial_s"]["on_accelerator"] is False   # the synthetic trials ran on "cpu"
    assert out["candidates"]["common"] == 6 and out["candidates"]["only_halving"] == []


def test_a_directory_that_is_not_a_run_is_refused_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "halving_vs_full.py"), str(tmp_path), str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert proc.stderr.strip() == f"{tmp_path}: not a run directory (no run.sqlite); expected the halving and the full-budget run"
