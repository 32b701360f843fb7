"""Executors: GPU placement over a faked device list, fault hooks in real trial processes (killed, past the
deadline, raising, out of memory) retried with every reason kept, the registry, the store's refusals.

    python -m pytest tests/test_executor.py -q
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from rewardsearch.config import Config, ConfigError, ExecutorConfig, load_config
from rewardsearch.execute.base import Job, TrialResult, attempt_failure, make_executor
from rewardsearch.execute.faults import parse
from rewardsearch.execute.local import LocalExecutor, SlotPool, gpu_free_mib, slots_that_fit, visible_gpus
from rewardsearch.screen.trial import TrialSpec
from rewardsearch.store import Store, StoreError

TESTS = Path(__file__).resolve().parent
CLI = [sys.executable, "-m", "rewardsearch.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REWARDSEARCH_")}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return {**env, **extra}


def _fake_jobs(root: Path, n: int, sleep_s: float = 0.6, **spec: object) -> list[Job]:
    jobs = []
    for i in range(n):
        out = root / f"job{i}"
        out.mkdir(parents=True)
        (out / "spec.json").write_text(json.dumps({"trial_id": f"job{i}", "sleep_s": sleep_s, **spec}))
        jobs.append(Job(f"job{i}", out / "spec.json", out / "log.txt", module="fake_job"))
    return jobs


def _run(executor, jobs: list[Job]) -> dict[str, TrialResult]:
    got: dict[str, TrialResult] = {}
    executor.run(jobs, on_done=lambda j, r: got.__setitem__(j.trial_id, r), poll_s=0.1)
    return got


# -- placement -----------------------------------------------------------------------------------------------------


def test_visible_gpus_reads_the_environment_and_cpu_places_none() -> None:
    assert visible_gpus("auto", {"CUDA_VISIBLE_DEVICES": "0,1,3"}) == ["0", "1", "3"]
    assert visible_gpus("cuda", {"CUDA_VISIBLE_DEVICES": "GPU-aa,GPU-bb"}) == ["GPU-aa", "GPU-bb"]
    assert visible_gpus("auto", {"CUDA_VISIBLE_DEVICES": "2,-1,3"}) == ["2"]   # CUDA stops at an invalid entry
    assert visible_gpus("auto", {"CUDA_VISIBLE_DEVICES": ""}) == []
    assert visible_gpus("cpu", {"CUDA_VISIBLE_DEVICES": "0,1"}) == []
    assert visible_gpus("auto", {"CUDA_VISIBLE_DEVICES": "0,1"}, configured=["5"]) == ["5"]


def test_slot_pool_spreads_before_it_stacks() -> None:
    pool = SlotPool(["0", "1", "2"], per_device=2)
    assert pool.total == 6
    assert [pool.take() for _ in range(6)] == ["0", "1", "2", "0", "1", "2"]
    assert pool.free() == 0
    pool.give("1")
    assert pool.take() == "1"
    assert SlotPool([], 3).devices == ["cpu"]


def test_slots_that_fit_caps_by_free_memory_and_keeps_at_least_one() -> None:
    assert slots_that_fit(8, 143_000, 27.0) == 5     # the H200 with 26 GiB Qwen trials: 5, not 8
    assert slots_that_fit(2, 143_000, 27.0) == 2     # fewer asked than fit: as asked
    assert slots_that_fit(4, 10_000, 27.0) == 1      # none fits: one, which fails with its own OOM error
    assert slots_that_fit(4, None, 27.0) == 4        # unknown free memory (GPU not listed): unchecked
    assert slots_that_fit(4, 143_000, None) == 4     # no trial_gpu_gib: unchecked


def _fake_nvidia_smi(bin_dir: Path, rows: list[str]) -> None:
    # stands in for the driver's tool: prints what `--query-gpu=index,uuid,memory.free` prints on a real host
    bin_dir.mkdir(parents=True, exist_ok=True)
    tool = bin_dir / "nvidia-smi"
    tool.write_text("#!/bin/sh\ncat <<'CSV'\n" + "\n".join(rows) + "\nCSV\n")
    tool.chmod(0o755)


def test_executor_places_no_more_trials_on_a_gpu_than_fit(tmp_path: Path, monkeypatch) -> None:
    _fake_nvidia_smi(tmp_path / "bin", ["0, GPU-aaaa, 143000", "1, GPU-bbbb, 60000"])
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    assert gpu_free_mib(["1", "GPU-aaaa", "7"]) == {"1": 60000, "GPU-aaaa": 143000}
    ex = LocalExecutor(ExecutorConfig(slots=8, trial_gpu_gib=27.0), device="auto",
                       env=_env(CUDA_VISIBLE_DEVICES="0,1"))
    assert ex.describe()["slots_by_device"] == {"0": 5, "1": 2}
    got = _run(ex, _fake_jobs(tmp_path / "jobs", 9, sleep_s=0.5))
    ran = [json.loads((tmp_path / "jobs" / t / "ran.json").read_text()) for t in got]
    for gpu, cap in (("0", 5), ("1", 2)):
        spans = [(r["start"], r["end"]) for r in ran if r["cuda_visible_devices"] == gpu]
        assert max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans) <= cap, (gpu, spans)
    # unset, the same GPUs take what executor.slots says
    assert LocalExecutor(ExecutorConfig(slots=8), device="auto",
                         env=_env(CUDA_VISIBLE_DEVICES="0,1")).describe()["slots_by_device"] == {"0": 8, "1": 8}


def test_trial_gpu_gib_is_refused_under_ray() -> None:
    with pytest.raises(ValueError, match="trial_gpu_gib is a local setting"):
        ExecutorConfig(name="ray", trial_gpu_gib=27.0)


def test_trials_land_on_every_fake_gpu_with_at_most_slots_per_gpu(tmp_path: Path) -> None:
    # 7 trials over 3 (faked) GPUs with 2 slots each: every child sees exactly one GPU, all three are used,
    # and no GPU ever holds more than 2 trials at once
    ex = LocalExecutor(ExecutorConfig(slots=2), device="auto", env=_env(CUDA_VISIBLE_DEVICES="0,1,2"))
    got = _run(ex, _fake_jobs(tmp_path, 7))
    ran = {tid: json.loads((tmp_path / tid / "ran.json").read_text()) for tid in got}
    for tid, r in got.items():
        assert r.last.reason is None and r.last.device == ran[tid]["cuda_visible_devices"]
        assert r.last.queue_s >= 0 and r.last.host
    assert {r["cuda_visible_devices"] for r in ran.values()} == {"0", "1", "2"}
    assert {r["omp"] for r in ran.values()} == {str(max(1, (os.cpu_count() or 1) // 6))}
    for gpu in ("0", "1", "2"):
        spans = [(r["start"], r["end"]) for r in ran.values() if r["cuda_visible_devices"] == gpu]
        at_once = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
        assert at_once <= 2, (gpu, spans)
    # the 7th trial waited for a slot: its queue time shows it
    assert max(r.last.queue_s for r in got.values()) > 0.3


def test_a_cpu_device_ignores_visible_gpus(tmp_path: Path) -> None:
    ex = LocalExecutor(ExecutorConfig(slots=2), device="cpu", env=_env(CUDA_VISIBLE_DEVICES="0,1"))
    got = _run(ex, _fake_jobs(tmp_path, 2, sleep_s=0.1))
    assert {r.last.device for r in got.values()} == {"cpu"}
    assert all(json.loads((tmp_path / t / "ran.json").read_text())["cuda_visible_devices"] == "" for t in got)


# -- faults in real trial processes --------------------------------------------------------------------------------


def _trial_job(root: Path, tid: str) -> Job:
    cfg = Config()
    out = root / tid
    out.mkdir(parents=True)
    TrialSpec(trial_id=tid, out_dir=str(out), model_dir=str(root / "no-model"), seed=0, task_seed=0,
              task=cfg.task.model_dump(mode="json"), model=cfg.model.model_dump(mode="json"),
              screen=cfg.screen.model_dump(mode="json"), sandbox=cfg.sandbox.model_dump(mode="json"),
              eval=cfg.eval.model_dump(mode="json")).write(out / "spec.json")
    return Job(tid, out / "spec.json", out / "log.txt")


def test_fault_hooks_in_real_trials_are_retried_with_every_reason(tmp_path: Path) -> None:
    # the real trial module; each fault fires before the model is loaded, on every attempt: 1 retry, then failed
    faults = "kill@f-kill,hang@f-hang,raise@f-raise,oom@f-oom,hostoom@f-host"
    cfg = ExecutorConfig(slots=5, retries=1, trial_timeout_s=8)
    ex = LocalExecutor(cfg, device="cpu", env=_env(REWARDSEARCH_FAULT=faults))
    got = _run(ex, [_trial_job(tmp_path, t) for t in ("f-kill", "f-hang", "f-raise", "f-oom", "f-host")])
    expect = {
        "f-kill": "killed by SIGKILL",
        "f-hang": "past its deadline of 8s",
        "f-raise": "crashed: RuntimeError: injected fault",
        "f-oom": "out of GPU memory: OutOfMemoryError: CUDA out of memory",
        "f-host": "out of host memory: MemoryError: injected fault",
    }
    for tid, want in expect.items():
        r = got[tid]
        assert [a.attempt for a in r.attempts] == [1, 2], tid
        assert all(a.reason and a.reason.startswith(want) for a in r.attempts), (tid, [a.reason for a in r.attempts])
        assert r.infra_reason.endswith("(attempt 2 of 2)")
    assert got["f-hang"].last.timed_out and got["f-hang"].last.wall_s >= 8
    # each attempt's output went to the trial's log, under its own header
    log = (tmp_path / "f-raise" / "log.txt").read_text()
    assert "== attempt 1 on" in log and "== attempt 2 on" in log and "injected fault" in log


def test_a_fault_on_the_first_attempt_only_is_survived(tmp_path: Path) -> None:
    ex = LocalExecutor(ExecutorConfig(slots=1, retries=2), device="cpu", env=_env(REWARDSEARCH_FAULT="kill@job*x1"))
    got = _run(ex, _fake_jobs(tmp_path, 1, sleep_s=0.1))
    r = got["job0"]
    assert [a.reason is None for a in r.attempts] == [False, True] and r.infra_reason is None
    assert json.loads((tmp_path / "job0" / "ran.json").read_text())["attempt"] == "2"


def test_no_retries_means_one_attempt(tmp_path: Path) -> None:
    ex = LocalExecutor(ExecutorConfig(slots=1, retries=0), device="cpu", env=_env())
    got = _run(ex, _fake_jobs(tmp_path, 1, sleep_s=0.0, exit=3))
    assert len(got["job0"].attempts) == 1 and got["job0"].infra_reason.startswith("exit code 3")


def test_attempt_failure_reads_signals_and_crash_files(tmp_path: Path) -> None:
    assert attempt_failure(0, False, 10, tmp_path) is None
    assert attempt_failure(-9, False, 10, tmp_path).startswith("killed by SIGKILL (out of host memory")
    assert attempt_failure(137, False, 10, tmp_path).startswith("killed by SIGKILL")
    assert attempt_failure(None, True, 10, tmp_path).startswith("past its deadline of 10s")
    assert attempt_failure(1, False, 10, tmp_path, "boom\n").startswith("exit code 1: boom")
    with pytest.raises(ValueError, match="mode 'explode'"):
        parse("explode")
    assert parse("kill@t-*x1,oom") == [("kill", "t-*", 1), ("oom", "*", None)]


# -- the registry and config refusals ------------------------------------------------------------------------------


def test_executors_come_from_the_registry() -> None:
    assert isinstance(make_executor(ExecutorConfig(), device="cpu"), LocalExecutor)


@pytest.mark.parametrize("overrides, message", [
    (["executor.address=auto"], "executor.address is a ray setting"),
    (["executor.artifact_dir=/shared"], "executor.artifact_dir is a ray setting"),
    (["executor.name=ray", "executor.gpus=[0]"], "executor.gpus is a local setting"),
    (["executor.name=slurm"], "executor.name"),
    (["screen.report_to=[neptune]"], "screen.report_to"),
])
def test_settings_of_the_other_executor_are_refused(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(preset="smoke", overrides=overrides)


# -- the store refuses what is not its own -------------------------------------------------------------------------


def test_a_corrupt_or_foreign_store_is_refused_and_left_untouched(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt" / "run.sqlite"
    corrupt.parent.mkdir()
    corrupt.write_bytes(b"not a database at all\n" * 50)
    foreign = tmp_path / "foreign" / "run.sqlite"
    foreign.parent.mkdir()
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT)")
    db.commit()
    db.close()
    newer = tmp_path / "newer" / "run.sqlite"
    newer.parent.mkdir()
    Store(newer).set_meta("schema_version", "99")
    for path, msg in ((corrupt, "not an SQLite database"), (foreign, "not a rewardsearch run store"),
                      (newer, "written by a newer rewardsearch")):
        before = path.read_bytes()
        with pytest.raises(StoreError, match=msg):
            Store(path)
        assert path.read_bytes() == before, "a refused store file was modified"
        for cmd in (["status", str(path.parent), "--json"], ["resume", str(path.parent)],
                    ["run", "--preset", "smoke", "--out", str(path.parent)]):
            proc = subprocess.run([*CLI, *cmd], capture_output=True, text=True, timeout=120)
            assert proc.returncode == 2 and msg in " ".join(proc.stderr.split()), (cmd, proc.stderr[-500:])
            assert "Traceback" not in proc.stderr
        assert path.read_bytes() == before


def test_a_second_driver_on_the_same_run_directory_is_refused(tmp_path: Path) -> None:
    from rewardsearch.search.loop import RunLocked, run_lock

    with run_lock(tmp_path):
        with pytest.raises(RunLocked, match=f"in use by pid {os.getpid()}"):
            with run_lock(tmp_path):
                pass
        proc = subprocess.run([sys.executable, "-c", f"from rewardsearch.search.loop import run_lock\n"
                               f"with run_lock(__import__('pathlib').Path({str(tmp_path)!r})): pass"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0 and "RunLocked" in proc.stderr
