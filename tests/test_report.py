"""The report: results.json recomputed independently (scipy only) to 1e-9, the verdict rule, cost read defensively,
and the HTML page rendered by a real headless browser (Debian's chromium), checked by screenshot size and DOM.

    python -m pytest tests/test_report.py -q
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from rewardsearch.report import write_report
from rewardsearch.store import Store

ROOT = Path(__file__).resolve().parents[1]


def _report(run_dir: Path) -> dict:
    store = Store.in_dir(run_dir)
    out = write_report(run_dir, store)
    store.close()
    return json.loads((out / "results.json").read_text())


def test_results_json_recomputes_independently_to_1e_9(synthetic_run: Path) -> None:
    results = _report(synthetic_run)
    assert {"evaluations", "comparisons", "arms", "winner", "families", "environment", "cost"} <= set(results)
    for e in results["evaluations"]:
        assert {"trial", "label", "split", "item_ids", "correct", "accuracy", "ci95"} <= set(e)
    for c in results["comparisons"]:
        assert {"a", "b", "split", "n01", "n10", "p_exact", "p_chi2_cc", "p_bonferroni", "p_holm"} <= set(c)
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "verify_results.py"),
                           str(synthetic_run / "report" / "results.json"), "--tol", "1e-9"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK" in proc.stdout and "p_holm" in proc.stdout and "arm_bootstrap_bca" in proc.stdout


def test_verifier_catches_a_tampered_number(synthetic_run: Path) -> None:
    results = _report(synthetic_run)
    results["comparisons"][0]["p_exact"] += 1e-6
    tampered = synthetic_run / "tampered.json"
    tampered.write_text(json.dumps(results))
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "verify_results.py"), str(tampered)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "MISMATCH" in proc.stdout


def _verify(path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "verify_results.py"), str(path), *extra],
                          capture_output=True, text=True, timeout=300)


def _set_meta(run_dir: Path, **updates: object) -> None:
    store = Store.in_dir(run_dir)
    for key, value in updates.items():
        store.set_meta(key, value)
    store.close()


def test_verifier_passes_at_another_confidence_level(synthetic_run: Path) -> None:
    store = Store.in_dir(synthetic_run)
    cfg = store.get_meta("config")
    store.close()
    cfg["stats"]["confidence"] = 0.9
    _set_meta(synthetic_run, config=cfg)
    r = _report(synthetic_run)
    e = r["evaluations"][0]
    assert e["ci_level"] == 0.9 and r["settings"]["bootstrap"]["confidence_level"] == 0.9
    proc = _verify(synthetic_run / "report" / "results.json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verdict" in proc.stdout and "family_test_pairs" in proc.stdout and "p_seeds_items" in proc.stdout


def test_verifier_recomputes_the_verdict_and_the_families(synthetic_run: Path) -> None:
    results = _report(synthetic_run)
    for name, tamper in (
        ("verdict", lambda x: x["winner"].update(verdict="tied")),
        ("family_test_pairs", lambda x: x["comparisons"].pop()),  # the last is a test-final one
        ("arm_ranks", lambda x: x["arms"][0].update(rank=99)),
    ):
        bad = json.loads(json.dumps(results))
        tamper(bad)
        path = synthetic_run / f"tampered-{name}.json"
        path.write_text(json.dumps(bad))
        proc = _verify(path)
        assert proc.returncode == 1 and "MISMATCH" in proc.stdout, (name, proc.stdout[-1500:])
        assert f"{name}: got" in proc.stdout, name


def test_an_unfinished_final_stage_declares_no_winner(synthetic_run: Path) -> None:
    _set_meta(synthetic_run, final_status="running")
    r = _report(synthetic_run)
    assert r["winner"]["verdict"] == "incomplete" and r["winner"]["runner_up"] is None
    assert "final stage has not finished" in (synthetic_run / "report" / "report.md").read_text()
    assert _verify(synthetic_run / "report" / "results.json").returncode == 0


def test_the_dev_family_is_marked_exploratory(synthetic_run: Path) -> None:
    fam = _report(synthetic_run)["families"]
    assert fam["dev-candidates"]["confirmatory"] is False and fam["test-final"]["confirmatory"] is True
    assert fam["dev-candidates"]["marker"] != fam["test-final"]["marker"]


def test_a_significantly_better_arm_is_the_winner_and_the_rest_of_the_family_is_corrected(synthetic_run: Path) -> None:
    r = _report(synthetic_run)
    w = r["winner"]
    assert w["arm"] == "top-3" and w["verdict"] == "winner" and w["runner_up"] == "top-2"
    assert w["comparison"]["p_holm"] < 0.05 and w["comparison"]["diff"] > 0
    assert w["comparison"]["test"].startswith("seeds+items") and len(w["comparison"]["per_seed_diff"]) == 3
    fam = r["families"]["test-final"]
    assert fam["m"] == 10 and fam["units"] == ["single-" + r["arms"][0]["members"][0], "top-2", "top-3", "base",
                                               "random-3"]
    top3 = next(a for a in r["arms"] if a["id"] == "top-3")
    assert top3["test"]["seed_summary"]["n_seeds"] == 3 and top3["test"]["seed_summary"]["sd"] is not None


def test_close_arms_are_declared_tied(tmp_path: Path) -> None:
    from conftest import make_synthetic_run

    run_dir = make_synthetic_run(tmp_path / "run")
    store = Store.in_dir(run_dir)
    # make top-3 exactly as good as top-2 on every seed and split: nothing can separate them
    for seed in (1, 2, 3):  # the final stage's fresh seeds (arm_seeds)
        for split in ("dev", "test"):
            src = store.eval(f"set-{_key(store, 'top-2')}-s{seed}", split)
            dst = store.eval(f"set-{_key(store, 'top-3')}-s{seed}", split)
            dst.correct, dst.accuracy = src.correct, src.accuracy
            store.add_eval(dst)
    store.close()
    w = _report(run_dir)["winner"]
    assert w["verdict"] == "tied" and {w["arm"], w["runner_up"]} == {"top-2", "top-3"}


def _key(store: Store, arm_id: str) -> str:
    from rewardsearch.search.finals import set_key

    arm = next(a for a in store.arms() if a.id == arm_id)
    return set_key(arm.members, arm.normalize)


def test_cost_sums_the_recorded_proposer_calls(synthetic_run: Path) -> None:
    assert _report(synthetic_run)["cost"]["proposer_calls_table"] is False
    store = Store.in_dir(synthetic_run)
    for tokens, cost in (((1000, 200), 0.01), ((500, 100), 0.005)):
        store.add_proposer_call({"round": 1, "proposer": "llm", "call": 0, "attempt": 0, "status": "ok",
                                 "prompt_tokens": tokens[0], "completion_tokens": tokens[1], "cost_usd": cost})
    store.close()
    cost = _report(synthetic_run)["cost"]
    assert cost["proposer_calls"] == 2 and cost["proposer_calls_table"] is True
    assert cost["proposer_usage"] == pytest.approx({"prompt_tokens": 1500, "completion_tokens": 300, "cost_usd": 0.015})


def test_a_run_without_final_stage_reports_the_search_and_declares_no_winner(synthetic_run: Path) -> None:
    db = sqlite3.connect(synthetic_run / "run.sqlite")
    db.execute("DELETE FROM arms")
    db.commit()
    db.close()
    r = _report(synthetic_run)
    assert r["winner"] is None and r["arms"] == [] and r["families"]["test-final"]["m"] == 0
    assert r["families"]["dev-candidates"]["m"] == 21  # 6 candidates + baseline, pairwise
    md = (synthetic_run / "report" / "report.md").read_text()
    assert "No final stage yet" in md


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-sync"]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium; .ci/run does)")
def test_the_page_renders_in_a_headless_browser(synthetic_run: Path, tmp_path: Path) -> None:
    _report(synthetic_run)
    page = synthetic_run / "report" / "index.html"
    html = page.read_text()
    assert "http://" not in html and "https://" not in html and "<script" not in html  # self-contained
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        [CHROMIUM, *CHROME_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
         "--window-size=1280,2000", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.is_file(), proc.stderr[-2000:]
    assert _png_size(shot) == (1280, 2000)
    assert shot.stat().st_size > 50_000  # a blank page compresses to a few KB; this one has tables and figures
    dom = subprocess.run(
        [CHROMIUM, *CHROME_FLAGS, f"--user-data-dir={tmp_path / 'profile2'}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120).stdout
    for anchor in ('id="verdict"', 'data-verdict="winner"', 'id="leaderboard-table"', 'id="arms-table"',
                   'id="final-table"', 'id="comparisons-table"', 'id="disagreement-table"', 'id="cost-table"',
                   'id="environment-table"', 'id="rounds-table"'):
        assert anchor in dom, anchor
    assert dom.count('src="data:image/png;base64,') >= 6  # forest, rounds, arms x2, two matrices, curves
    assert "top-3" in dom and "base rewards only" in dom and "random-3" in dom
