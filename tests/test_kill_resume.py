"""The driver SIGKILLed at 5 random points across a tiny CPU run, resumed each time: the same trials, leaderboard
and per-item vectors as an uninterrupted run, every trial collected exactly once, none restarted after it was
collected (`scripts/kill_resume.py`; its default is 20 points).

    python -m pytest tests/test_kill_resume.py -q
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "kill_resume.py"


def test_sigkill_at_random_points_loses_nothing_finished(tmp_path: Path, tiny_model_dir: Path) -> None:
    spec = importlib.util.spec_from_file_location("kill_resume", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    summary = mod.kill_loop(tmp_path, tiny_model_dir, points=5, seed=3, min_s=4.0, max_s=30.0)
    assert summary["kills"] >= 3, summary["kill_log"]   # the run outlived most kill points
    assert summary["ok"], (summary["checks"], summary["problems"])
    # what a kill loses is at most what was running: two trial slots and the base model's evaluation
    assert summary["max_in_flight_at_one_kill"] <= 3
