"""The final stage for real on a tiny model: `ensemble DIR` trains reward sets, extra seeds and controls; a SIGKILL
mid-stage loses nothing finished; then `report` and `export` work on the result.

    python -m pytest tests/test_finals.py -q
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rewardsearch.store import Store

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "rewardsearch.cli"]
ROOT = Path(__file__).resolve().parents[1]
# smoke-sized final stage: top-2 (greedy-cover usually the same set), one extra seed, the best single, controls
FINAL = ["ensemble.ks=[2]", "ensemble.greedy=[cover]", "ensemble.seeds=2", "ensemble.retrain_top=1",
         "ensemble.random_k_policy=best", "ensemble.random_draws=2", "stats.confidence=0.9"]


def _tiny(model_dir: Path) -> list[str]:
    return [
        f"model.name={model_dir}", "search.rounds=1", "search.candidates_per_round=3", "screen.steps=2",
        "screen.max_completion_length=12", "screen.num_generations=4", "screen.prompts_per_step=1",
        "eval.dev_size=8", "eval.test_size=8", "eval.max_new_tokens=12", "eval.batch_size=8",
        "task.arith.train_size=32", "task.arith.dev_size=8", "task.arith.test_size=8",
    ]


def _cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def searched(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("searched") / "run"
    proc = _cli("run", "--preset", "smoke", "--out", str(run_dir), *_tiny(tiny_model_dir))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def test_ensemble_refuses_search_keys_and_unfinished_runs(searched: Path, tmp_path: Path) -> None:
    proc = _cli("ensemble", str(searched), "screen.steps=9")
    assert proc.returncode != 0 and "only ensemble.*, executor.*, stats.* keys may change" in proc.stderr
    unfinished = tmp_path / "unfinished"
    shutil.copytree(searched, unfinished)
    store = Store.in_dir(unfinished)
    store.set_meta("status", "running")
    store.close()
    proc = _cli("ensemble", str(unfinished), *FINAL)
    assert proc.returncode != 0 and "has not finished" in proc.stderr


def test_sigkill_mid_stage_then_rerun_completes_without_redoing_trials(searched: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(searched, run_dir)
    driver = subprocess.Popen([*CLI, "ensemble", str(run_dir), *FINAL], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    store = Store.in_dir(run_dir)
    deadline = time.time() + 600
    while time.time() < deadline:
        time.sleep(0.5)
        if any(e.get("stage") == "final" for e in store.events("trial_done")):
            break
        assert driver.poll() is None, "the stage ended before a first trial finished"
    else:
        pytest.fail("no final-stage trial finished")
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    done_before = {e["trial"] for e in store.events("trial_done") if e.get("stage") == "final"}
    arms_before = {a.id: a.members for a in store.arms()}
    starts_before = len(store.events("trial_started"))

    proc = _cli("ensemble", str(run_dir))  # no overrides: the stored ones are reused
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "override: ensemble.ks=[2]" in proc.stderr
    store = Store.in_dir(run_dir)
    assert store.get_meta("final_status") == "done"
    restarted = {e["trial"] for e in store.events("trial_started")[starts_before:]}
    assert not restarted & done_before
    arms = {a.id: a for a in store.arms()}
    for aid, members in arms_before.items():
        assert arms[aid].members == members  # the plan (and any random draw) is kept
    kinds = {a.kind for a in arms.values()}
    assert kinds == {"single", "ensemble", "control"}
    assert {"base", "top-2"} <= set(arms)
    draws = [a for a in arms.values() if a.strategy == "random-k"]
    assert len(draws) == 2 and {a.meta["draw"] for a in draws} == {1, 2}
    # every arm: two fresh seeds (not the search's seed 0), each evaluated once on dev and once on test, and every
    # arm trained with the same normalization (singles and base-only included)
    from rewardsearch.search.finals import arm_trial_id

    for a in arms.values():
        assert a.normalize == "zscore", a.id
        for seed in (1, 2):
            tid = arm_trial_id(a, seed)
            assert store.eval(tid, "dev") and store.eval(tid, "test"), (a.id, seed)
    ens = store.trial(arm_trial_id(arms["top-2"], 1))
    single = next(a for a in arms.values() if a.kind == "single")
    single_train = json.loads((Path(store.trial(arm_trial_id(single, 1)).dir) / "train.json").read_text())
    assert single_train["normalize"] == "zscore" and single_train["reward_weights"] == pytest.approx([1 / 3] * 3 + [1.0])
    train = json.loads((Path(ens.dir) / "train.json").read_text())
    assert train["normalize"] == "zscore" and train["reward_weights"] == pytest.approx([1 / 3] * 3 + [1.0, 1.0])
    assert any("raw_mean" in k for row in train["log_history"] for k in row)
    # the search's own trials are not final arms: their dev score selected them (and seed 0 is not a final seed)
    assert store.eval("baseline-s0", "test") is None
    assert all(not t.startswith(("baseline-", "t-")) for t in done_before | restarted)
    assert "final arms on test" in proc.stdout and "verdict:" in proc.stdout

    proc = _cli("report", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    verify = subprocess.run([sys.executable, str(ROOT / "scripts" / "verify_results.py"),
                             str(run_dir / "report" / "results.json")], capture_output=True, text=True, timeout=300)
    assert verify.returncode == 0, verify.stdout  # at stats.confidence=0.9 (FINAL): Wilson, bootstrap, t intervals
    assert json.loads((run_dir / "report" / "results.json").read_text())["settings"]["confidence"] == 0.9
    proc = _cli("export", str(run_dir), "--format", "trl", "--top", "1", "--out", str(tmp_path / "best.py"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "best.py").is_file() and (tmp_path / "best.manifest.json").is_file()
