"""`benchmarks/halving_replay.py` on the real H200 run it was written for (committed as a pack): successive
halving and the pre-screen replayed on a run where every candidate trained the full budget with a record at every
rung; and the refusal of a run that cannot be replayed (a real halving run, keep 0.25).

    python -m pytest tests/test_halving_replay.py -q
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKS = ROOT / "benchmarks" / "results" / "proof"


def _module():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("halving_replay", ROOT / "benchmarks" / "halving_replay.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _unpack(pack: str, out: Path) -> Path:
    proc = subprocess.run([sys.executable, "-m", "rewardsearch.cli", "unpack", str(PACKS / pack), "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-1500:]
    return out


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _unpack("2026-12-03-halving-full-budget.rspack.00-of-01", tmp_path_factory.mktemp("hvr") / "run")


def test_keeping_everyone_replays_the_full_budget(full_run: Path) -> None:
    v = _module().replay(full_run, keep=1.0, within_noise=False, prescreen=False)
    assert v["candidates"] == 19 and v["left_out"] == ["evo_phrase_toler_f0_0067a4"]   # interrupted at rung 1
    assert v["rung_decisions"] == [{"rung": 1, "steps": 10, "trials": 19, "promoted": 19}]
    assert v["steps"] == {"halving": 570, "full": 570}
    assert v["found"] == v["found_exact"] == 5 and [x["name"] for x in v["halving_top"]] == [
        x["name"] for x in v["full_top"]]
    t = v["trial_s"]
    # every rung segment counted = the run's own job seconds (restarts included), above the one-job full cost
    assert math.isclose(t["halving"], t["full_measured_s"], rel_tol=0.01) and t["full"] < t["full_measured_s"]


def test_halving_with_the_prescreen_trains_fewer_and_reports_the_rejected(full_run: Path) -> None:
    v = _module().replay(full_run, keep=0.25, within_noise=False, prescreen=True)
    rejected = {x["name"] for x in v["prescreen_would_reject"]}
    assert len(rejected) == 2
    assert v["rung_decisions"] == [{"rung": 1, "steps": 10, "trials": 17, "promoted": math.ceil(0.25 * 17)}]
    assert v["steps"]["halving"] == 17 * 10 + 5 * 20
    assert not rejected & {x["name"] for x in v["halving_top"]}
    assert v["trial_s"]["ratio"] == v["trial_s"]["full"] / v["trial_s"]["halving"] > 1
    # a would-be rejection is looked up in the full-budget ranking
    assert all(x["would_be_top_k"] == (x["full_budget_rank"] <= 5) for x in v["prescreen_would_reject"])


def test_a_real_halving_run_is_refused_in_one_line(tmp_path: Path) -> None:
    run = _unpack("2026-12-02-search.rspack.00-of-01", tmp_path / "run")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "halving_replay.py"), str(run)],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert proc.stderr.strip() == f"{run}: screen.keep=0.25: every rung must promote everyone (keep=1.0)"


def test_the_report_lists_the_verdicts_recorded_but_not_applied(full_run: Path) -> None:
    from rewardsearch.report.markdown import screening_markdown
    from rewardsearch.report.results import build_results
    from rewardsearch.store import Store

    res = build_results(full_run, Store.in_dir(full_run))
    sc = res["cost"]["screening"]
    p = sc["prescreen"]
    assert p["reject"] is False and p["rejected"] == [] and p["checked"] == 20
    assert {x["name"] for x in p["would_reject"]} == {"evo_sol_grade_f3_eaa313", "evo_sol_toler_f0_ce5fee"}
    md = screening_markdown(res["status"], sc)
    assert "2 more would have been rejected (`prescreen.reject=false`: recorded, trained anyway):" in md
    assert "- `evo_sol_toler_f0_ce5fee`: ranks wrong completions above right ones: mean within-group AUC 0.46" in md
