"""Packing a run for another machine: bounded parts, a consistent store, checkpoints that fit, nothing finished lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rewardsearch.rewards.spec import RewardSpec
from rewardsearch.store import Store
from rewardsearch.transfer import pack, unpack


def _run_dir(tmp_path: Path) -> tuple[Path, Store]:
    run = tmp_path / "myrun"
    store = Store.in_dir(run)
    store.set_meta("status", "running")
    store.add_candidates([RewardSpec(name=f"r{i}", source=f"def r{i}(prompts, completions, **kw):\n"
                                     f"    return [{i}.0] * len(completions)\n") for i in range(3)],
                         proposed_round=1)
    done = run / "trials" / "t-done"
    (done / "adapter").mkdir(parents=True)
    (done / "adapter" / "adapter_model.safetensors").write_bytes(os.urandom(3 << 20))
    (done / "train.json").write_text(json.dumps({"state": "done"}))
    (done / "eval_dev.json").write_text(json.dumps({"accuracy": 0.5}))
    for name, mib in (("t-old", 4), ("t-new", 2)):
        ck = run / "trials" / name / "hf" / "checkpoint-4"
        ck.mkdir(parents=True)
        (ck / "optimizer.pt").write_bytes(os.urandom(mib << 20))   # random: it does not compress, like real ones
        (ck / "trainer_state.json").write_text("{}")
        (run / "trials" / name / "steps.log").write_text("1 0\n2 0\n")
        os.utime(ck.parent, (1, 1) if name == "t-old" else None)
    return run, store


def test_pack_keeps_the_store_and_records_and_the_newest_checkpoint_that_fits(tmp_path: Path) -> None:
    run, store = _run_dir(tmp_path)
    store.set_meta("written_after_open", 42)      # still in the WAL: the snapshot must hold it
    rep = pack(run, tmp_path / "parts", budget_mb=5, part_mb=1)
    assert len(rep.parts) >= 3 and all(p.stat().st_size <= 1 << 20 for p in rep.parts)
    assert rep.kept_checkpoints == ["t-new"] and rep.dropped_checkpoints == ["t-old"]
    assert rep.dropped_adapters == 1
    out = unpack(list(reversed(rep.parts)), tmp_path / "elsewhere")   # any order
    moved = Store.in_dir(out)
    assert moved.get_meta("written_after_open") == 42
    assert [c["name"] for c in moved.candidates(round=0)] == ["r0", "r1", "r2"]
    assert (out / "trials" / "t-done" / "eval_dev.json").is_file()
    assert not (out / "trials" / "t-done" / "adapter").exists()
    assert (out / "trials" / "t-new" / "hf" / "checkpoint-4" / "optimizer.pt").stat().st_size == 2 << 20
    assert not (out / "trials" / "t-old" / "hf").exists() and (out / "trials" / "t-old" / "steps.log").is_file()


def test_bad_input_is_refused_and_nothing_is_overwritten(tmp_path: Path) -> None:
    run, _ = _run_dir(tmp_path)
    with pytest.raises(ValueError, match="not a run directory"):
        pack(tmp_path / "nowhere", tmp_path / "p")
    rep = pack(run, tmp_path / "parts", budget_mb=20, part_mb=2)
    with pytest.raises(ValueError, match="already holds a run"):
        unpack(rep.parts, run)
    if len(rep.parts) > 1:
        with pytest.raises(ValueError, match=rf"1 of {len(rep.parts)} pack parts"):
            unpack(rep.parts[:1], tmp_path / "x")
    rep.parts[0].write_bytes(b"garbage" + rep.parts[0].read_bytes()[7:])
    with pytest.raises(ValueError, match="corrupt or incomplete"):
        unpack(rep.parts, tmp_path / "y")


def test_cli_pack_and_unpack(tmp_path: Path) -> None:
    run, _ = _run_dir(tmp_path)
    cli = [sys.executable, "-m", "rewardsearch.cli"]
    p = subprocess.run([*cli, "pack", str(run), "--out", str(tmp_path / "parts"), "--budget-mb", "30"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "checkpoints kept: t-new, t-old" in " ".join(p.stderr.split())
    parts = sorted((tmp_path / "parts").glob("myrun.rspack.*"))
    u = subprocess.run([*cli, "unpack", *map(str, parts), "--out", str(tmp_path / "b")],
                       capture_output=True, text=True, timeout=120)
    assert u.returncode == 0, u.stderr
    assert Store.in_dir(tmp_path / "b").get_meta("status") == "running"
