"""The whole loop through the CLI on a tiny real model: run, status --json, report; SIGKILL mid round 2, resume.

    python -m pytest tests/test_e2e.py -q
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rewardsearch.search.ranking import BASE_MODEL
from rewardsearch.store import Store

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "rewardsearch.cli"]


def _overrides(model_dir: Path) -> list[str]:
    return [
        f"model.name={model_dir}", "search.rounds=2", "search.candidates_per_round=2",
        "screen.steps=2", "screen.max_completion_length=12", "screen.num_generations=4",
        "screen.prompts_per_step=1", "eval.dev_size=8", "eval.max_new_tokens=12", "eval.batch_size=8",
        "task.arith.train_size=32", "task.arith.dev_size=8", "task.arith.test_size=8",
    ]


def _cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def _status(run_dir: Path) -> dict:
    proc = _cli("status", str(run_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_run_status_and_report(tmp_path: Path, tiny_model_dir: Path) -> None:
    run_dir = tmp_path / "run"
    proc = _cli("run", "--preset", "smoke", "--out", str(run_dir), *_overrides(tiny_model_dir))
    assert proc.returncode == 0, proc.stderr[-3000:]
    st = _status(run_dir)
    assert st["status"] == "done" and st["rounds_done"] == 2
    rows = st["candidates"]
    assert rows[0]["origin"] == "baseline" and rows[0]["state"] == "evaluated"
    # the base model, untrained, evaluated once: the "before" of every trial's shift
    assert st["base_model"]["state"] == "done" and st["base_model"]["dev"]["n"] == 8
    assert rows[0]["shift"]["length"]["base"] == st["base_model"]["dev"]["mean_length"]
    cands = rows[1:]
    # two distinct candidates a round; behavioural duplicates are rejected and replaced (search.refills)
    distinct = [c for c in cands if not (c["reason"] or "").startswith("dedup:")]
    assert len(distinct) == 4 and {c["round"] for c in distinct} == {1, 2}
    for c in cands:
        assert c["origin"] == "evolve" and c["id"] and c["name"]
        if c["state"] == "evaluated":
            assert 0 <= c["dev"]["accuracy"] <= 1 and len(c["dev"]["ci95"]) == 2
            assert c["dev"]["n"] == 8 and "extraction_rate" in c["dev"]
        else:
            assert c["reason"], c
    # round 2 was bred from round 1's ranking: its parents are round-1 candidates
    round1 = {c["id"] for c in cands if c["round"] == 1}
    store = Store.in_dir(run_dir)
    for c in store.candidates(round=2):
        assert set(c["parents"]) <= round1
    assert store.feedback(1)["top"], "round 1 fed nothing back"
    proc = _cli("report", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    md = (run_dir / "report" / "report.md").read_text()
    assert "base rewards only" in md and all(c["name"] in md for c in cands)
    # a second `run` into the same directory refuses instead of clobbering it
    again = _cli("run", "--preset", "smoke", "--out", str(run_dir))
    assert again.returncode != 0 and "already holds a run" in again.stderr


def test_sigkill_mid_round_two_then_resume_keeps_finished_trials(tmp_path: Path, tiny_model_dir: Path) -> None:
    run_dir = tmp_path / "run"
    driver = subprocess.Popen([*CLI, "run", "--preset", "smoke", "--out", str(run_dir), *_overrides(tiny_model_dir)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    store = None
    while time.time() < deadline:
        time.sleep(0.5)
        if store is None and (run_dir / "run.sqlite").exists():
            store = Store.in_dir(run_dir)
        if store is not None and store.get_meta("round_1_done"):
            started = [e for e in store.events("trial_started") if e["trial"] != "baseline-s0"]
            round2 = {f"t-{c['id']}-s0" for c in store.candidates(round=2)}
            if any(e["trial"] in round2 for e in started):
                break
        assert driver.poll() is None, "the run ended before round 2 started"
    else:
        pytest.fail("round 2 never started")
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    done_before = {t.id: t for t in store.trials() if t.state == "done"}
    assert len(done_before) >= 3  # baseline and round 1
    # the base model's evaluation trains nothing: its eval file is what a redo would rewrite
    stamps = {tid: (Path(t.dir) / ("eval_dev.json" if t.kind == BASE_MODEL else "train.json")).stat().st_mtime_ns
              for tid, t in done_before.items()}
    starts_before = len(store.events("trial_started"))

    proc = _cli("resume", str(run_dir))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _status(run_dir)["status"] == "done"
    store = Store.in_dir(run_dir)
    # finished trials are kept as they were, and none was started again
    for tid, t in done_before.items():
        assert store.trial(tid).state == "done"
        assert (Path(t.dir) / ("eval_dev.json" if t.kind == BASE_MODEL else "train.json")).stat().st_mtime_ns \
            == stamps[tid]
    restarted = [e["trial"] for e in store.events("trial_started")[starts_before:]]
    assert not set(restarted) & set(done_before)
    # no batch (a round's proposal or one of its refills) was asked for twice
    batches = [(e["round"], e.get("refill")) for e in store.events("proposed")]
    assert len(batches) == len(set(batches)) and (2, None) in batches
    assert store.events("resumed")
