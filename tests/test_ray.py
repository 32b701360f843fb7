"""The Ray executor on a local Ray cluster (2 CPUs): trial directories shipped to the task and back, a killed trial
and a lost worker retried with their reasons, the deadline; the smoke search through Ray gives the local
executor's leaderboard, also when a Ray-driven run is SIGKILLed and resumed on the local executor.

    python -m pytest tests/test_ray.py -q
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
from test_executor import _env, _fake_jobs, _run

ray = pytest.importorskip("ray")

from rewardsearch.config import ExecutorConfig  # noqa: E402
from rewardsearch.execute.ray import RayExecutor  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    # the tests' own private cluster; what RayExecutor starts when executor.address is unset is the same
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": _env()["PYTHONPATH"]}})
    yield
    ray.shutdown()


def _ray(env: dict[str, str] | None = None, **cfg: object) -> RayExecutor:
    return RayExecutor(ExecutorConfig(name="ray", **cfg), device="cpu", env=env or _env())


def test_trial_directories_go_to_the_task_and_come_back(cluster: None, tmp_path: Path) -> None:
    jobs = _fake_jobs(tmp_path, 3, sleep_s=0.2)
    for j in jobs:
        (j.out_dir / "remove_me").write_text("the job deletes this; the deletion must come back too")
    spec_before = jobs[0].spec_path.read_bytes()
    got = _run(_ray(slots=2), jobs)
    for j in jobs:
        r = got[j.trial_id]
        assert r.last.reason is None and r.last.device == "cpu" and r.last.host
        assert (j.out_dir / "ran.json").is_file() and not (j.out_dir / "remove_me").exists()
        assert "(ray)" in j.log_path.read_text()
    assert jobs[0].spec_path.read_bytes() == spec_before   # the driver's spec, not the node's rewritten one
    assert not list(tmp_path.glob(".incoming-*")) and not list(tmp_path.glob("*.old"))


def test_a_shared_artifact_dir_is_written_in_place_and_a_run_outside_it_refused(cluster: None,
                                                                             tmp_path: Path) -> None:
    from rewardsearch.execute.base import ExecutorError

    shared = tmp_path / "shared"
    jobs = _fake_jobs(shared / "run" / "trials", 2, sleep_s=0.1)
    ex = _ray(slots=2, artifact_dir=str(shared))
    got = _run(ex, jobs)
    for j in jobs:
        assert got[j.trial_id].last.reason is None and (j.out_dir / "ran.json").is_file()
        # written where it lies: the spec was not rewritten to a node-local copy
        assert "out_dir" not in json.loads(j.spec_path.read_text())
    outside = _fake_jobs(tmp_path / "elsewhere", 1)
    with pytest.raises(ExecutorError, match="is not inside it"):
        _run(_ray(artifact_dir=str(shared)), outside)


def test_a_killed_trial_and_a_lost_worker_are_retried_with_their_reasons(cluster: None, tmp_path: Path) -> None:
    env = _env(REWARDSEARCH_FAULT="kill@job0x1,killparent@job1x1")
    got = _run(_ray(env, slots=2, retries=1), _fake_jobs(tmp_path, 2, sleep_s=0.1))
    assert got["job0"].attempts[0].reason.startswith("killed by SIGKILL")
    assert got["job1"].attempts[0].reason.startswith("lost its Ray worker or node"), got["job1"].attempts[0]
    for r in got.values():
        assert len(r.attempts) == 2 and r.infra_reason is None


def test_a_task_past_its_deadline_is_killed(cluster: None, tmp_path: Path) -> None:
    got = _run(_ray(_env(REWARDSEARCH_FAULT="hang"), retries=0, trial_timeout_s=3), _fake_jobs(tmp_path, 1))
    assert got["job0"].infra_reason.startswith("past its deadline of 3s")


# -- the smoke search through Ray: the local executor's leaderboard -------------------------------------------------

CLI = [sys.executable, "-m", "rewardsearch.cli"]


def _board(run_dir: Path) -> list[tuple]:
    proc = subprocess.run([*CLI, "status", str(run_dir), "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    st = json.loads(proc.stdout)
    assert st["status"] == "done"
    return [(c["id"], c["state"], c["dev"]["accuracy"] if c["dev"] else None) for c in st["candidates"]]


def _vectors(run_dir: Path) -> dict[str, list[int]]:
    from rewardsearch.store import Store

    return {e.trial_id: e.correct for e in Store.in_dir(run_dir).evals()}


@pytest.mark.slow
def test_ray_gives_the_local_leaderboard_and_resume_may_switch(tmp_path: Path, tiny_model_dir: Path) -> None:
    from test_e2e import _overrides

    args = ["--preset", "smoke", *_overrides(tiny_model_dir)]
    local = tmp_path / "local"
    proc = subprocess.run([*CLI, "run", "--out", str(local), *args], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # through Ray, killed (SIGKILL) once a candidate trial has finished, then resumed on the local executor
    via_ray = tmp_path / "ray"
    driver = subprocess.Popen([*CLI, "run", "--out", str(via_ray), *args, "executor.name=ray"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from rewardsearch.store import Store

    deadline, store = time.time() + 600, None
    while time.time() < deadline and driver.poll() is None:
        time.sleep(0.5)
        if store is None and (via_ray / "run.sqlite").exists():
            store = Store.in_dir(via_ray)
        if store is not None and any(e["trial"].startswith("t-") for e in store.events("trial_done")):
            break
    assert driver.poll() is None, "the Ray run ended before it could be killed"
    assert store.get_meta("executor")["name"] == "ray"
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    proc = subprocess.run([*CLI, "resume", str(via_ray), "executor.name=local"], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _board(via_ray) == _board(local)
    assert _vectors(via_ray) == _vectors(local)
    hosts = {a["device"] for t in Store.in_dir(via_ray).trials() for a in t.metrics.get("attempts", [])}
    assert "cpu" in hosts
