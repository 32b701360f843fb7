"""Faults through the whole loop on the tiny model: retried trials placed on (faked) GPUs, a round whose every trial
fails for infrastructure reasons stops the run and `resume` trains them again, a failing pre-flight stops the run
before any proposal, SIGINT stops cleanly with no trial process left.

    python -m pytest tests/test_faults_e2e.py -q
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
from conftest import sigint_default
from test_e2e import _overrides

from rewardsearch.store import Store

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "rewardsearch.cli"]


def _tiny(model_dir: Path) -> list[str]:
    # one round of two candidates; the sandbox's and trial's settings as test_e2e's
    return [*_overrides(model_dir), "search.rounds=1", "search.refills=0"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REWARDSEARCH_")}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return {**env, **extra}


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env or _env())


def _status(run_dir: Path) -> dict:
    proc = _cli("status", str(run_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_killed_trials_are_retried_on_the_faked_gpus_and_recorded(tmp_path: Path, tiny_model_dir: Path) -> None:
    run_dir = tmp_path / "run"
    # every candidate trial is SIGKILLed on its first attempt; two faked GPUs, one trial each (screen.device=auto
    # trains on the CPU here, since CUDA finds no real GPU behind the ids)
    env = _env(CUDA_VISIBLE_DEVICES="0,1", REWARDSEARCH_FAULT="kill@t-*x1")
    proc = _cli("run", "--preset", "smoke", "--out", str(run_dir), *_tiny(tiny_model_dir), "screen.device=auto",
                "executor.slots=1", "executor.retries=1", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    st = _status(run_dir)
    assert st["status"] == "done" and st["preflight"]["ok"]
    # the pre-flight trained one step and kept its record, not its throwaway adapter (it would ride in every pack)
    assert (run_dir / "preflight" / "train.json").is_file() and not (run_dir / "preflight" / "adapter").exists()
    assert st["executor"]["devices"] == ["0", "1"] and st["executor"]["slots_per_device"] == 1
    trials = {t["id"]: t for t in st["trials"]}
    cands = [t for tid, t in trials.items() if tid.startswith("t-")]
    assert len(cands) == 2
    for t in cands:
        assert t["state"] == "done" and not t["infra"]
        assert [a["attempt"] for a in t["attempts"]] == [1, 2]
        assert t["attempts"][0]["reason"].startswith("killed by SIGKILL") and t["attempts"][1]["reason"] is None
        assert t["queue_s"] is not None and t["job_wall_s"] > 0 and t["host"]
    # every trial's CUDA_VISIBLE_DEVICES is in the store, and both GPUs were used
    devices = {a["device"] for t in trials.values() for a in t["attempts"]}
    assert devices == {"0", "1"}, devices
    assert {c["state"] for c in st["candidates"][1:]} == {"evaluated"}
    store = Store.in_dir(run_dir)
    assert len(store.events("trial_retry")) == 2
    log = Path(cands[0]["log"]).read_text()
    assert "== attempt 1 on" in log and "== attempt 2 on" in log


def test_a_round_of_infrastructure_failures_stops_and_resume_trains_them_again(tmp_path: Path,
                                                                             tiny_model_dir: Path) -> None:
    run_dir = tmp_path / "run"
    proc = _cli("run", "--preset", "smoke", "--out", str(run_dir), *_tiny(tiny_model_dir), "executor.retries=1",
                env=_env(REWARDSEARCH_FAULT="raise@t-*"))
    assert proc.returncode != 0
    msg = " ".join(proc.stderr.split())
    assert "round 1: all 2 trials failed for infrastructure reasons after 1 retries each" in msg, msg[-2000:]
    assert "crashed: RuntimeError: injected fault" in msg and "rewardsearch resume" in msg
    st = _status(run_dir)
    assert st["status"] == "failed" and st["rounds_done"] == 0
    cands = st["candidates"][1:]
    assert {c["state"] for c in cands} == {"infra_failed"}
    assert all(c["reason"].startswith("infrastructure: crashed") for c in cands)
    store = Store.in_dir(run_dir)
    assert store.feedback(1) is None   # the round never fed anything back, least of all these as the rewards' fault

    proc = _cli("resume", str(run_dir))   # the fault is gone: the same candidates train now
    assert proc.returncode == 0, proc.stderr[-3000:]
    st = _status(run_dir)
    assert st["status"] == "done"
    assert {c["id"] for c in st["candidates"][1:]} == {c["id"] for c in cands}
    assert {c["state"] for c in st["candidates"][1:]} == {"evaluated"}
    store = Store.in_dir(run_dir)
    assert len(store.events("trial_reset")) == 2
    assert not [f for f in store.feedback(1)["failures"] if f["state"] == "infra_failed"]


def test_a_failing_preflight_stops_before_any_proposal(tmp_path: Path, tiny_model_dir: Path) -> None:
    run_dir = tmp_path / "run"
    proc = _cli("run", "--preset", "smoke", "--out", str(run_dir), *_tiny(tiny_model_dir), "executor.retries=0",
                env=_env(REWARDSEARCH_FAULT="oom@preflight"))
    assert proc.returncode != 0
    msg = " ".join(proc.stderr.split())
    assert "pre-flight failed" in msg and "out of GPU memory" in msg and "no proposer was called" in msg, msg[-2000:]
    store = Store.in_dir(run_dir)
    assert store.candidates() == [] and not store.events("proposed") and store.proposer_calls() == []
    assert store.get_meta("status") == "failed" and store.get_meta("preflight")["ok"] is False


def _trial_processes(run_dir: Path) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if str(run_dir) in cmd and "rewardsearch.cli" not in cmd:
                out.append(int(p.name))
    return out


def test_sigint_stops_cleanly_with_no_trial_left(tmp_path: Path, tiny_model_dir: Path) -> None:
    run_dir = tmp_path / "run"
    driver = subprocess.Popen([*CLI, "run", "--preset", "smoke", "--out", str(run_dir), *_tiny(tiny_model_dir)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(),
                              preexec_fn=sigint_default)
    deadline = time.time() + 600
    while time.time() < deadline:
        time.sleep(0.5)
        if (run_dir / "run.sqlite").exists() and any(
                e["trial"].startswith("t-") for e in Store.in_dir(run_dir).events("trial_started")):
            break
        assert driver.poll() is None, driver.stderr.read()[-2000:]
    else:
        pytest.fail("no candidate trial started")
    assert _trial_processes(run_dir), "the trial processes were not found"
    driver.send_signal(signal.SIGINT)
    rc = driver.wait(timeout=120)
    err = driver.stderr.read()
    assert rc == 130, err[-2000:]
    assert "interrupted; continue with `rewardsearch resume" in " ".join(err.split())
    time.sleep(1.0)
    assert _trial_processes(run_dir) == []
    st = _status(run_dir)
    assert st["status"] == "interrupted" and st["running"] == {}
