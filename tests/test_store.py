"""Run store: a real SQLite file in WAL mode; records round-trip; a round is proposed exactly once.

    python -m pytest tests/test_store.py -q
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rewardsearch.rewards.spec import RewardSpec, reward_id
from rewardsearch.store import EvalRecord, Store, TrialRecord


def _spec(i: int) -> RewardSpec:
    return RewardSpec(name=f"r{i}", source=f"def r{i}(prompts, completions, **kw):\n    return [{i}.0] * len(completions)\n")


def test_wal_mode_and_reopen(tmp_path: Path) -> None:
    s = Store.in_dir(tmp_path)
    assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    s.set_meta("status", "running")
    s.close()
    assert Store.in_dir(tmp_path).get_meta("status") == "running"


def test_candidate_ids_are_content_hashes_and_unique(tmp_path: Path) -> None:
    s = Store.in_dir(tmp_path)
    a = _spec(1)
    cosmetic = RewardSpec(name="other", source='def r1(prompts, completions, **kw):\n    """doc"""\n    # c\n'
                          "    return [1.0] * len(completions)\n")
    assert a.id == cosmetic.id == reward_id(a.source)
    assert len(s.add_candidates([a, cosmetic, _spec(2)], proposed_round=1)) == 2
    assert s.get_meta("proposed_round_1") is True
    assert [c["name"] for c in s.candidates(round=0)] == ["r1", "r2"]


def test_state_changes_are_validated(tmp_path: Path) -> None:
    s = Store.in_dir(tmp_path)
    s.add_candidates([_spec(1)])
    s.set_candidate_state(_spec(1).id, "rejected", "static: line 1: import of 'os' is not allowed", ["x"])
    c = s.candidate(_spec(1).id)
    assert c and c["state"] == "rejected" and c["flags"] == ["x"] and "os" in c["reason"]
    with pytest.raises(ValueError, match="candidate state 'bogus'"):
        s.set_candidate_state(_spec(1).id, "bogus")


def test_trial_and_eval_round_trip(tmp_path: Path) -> None:
    s = Store.in_dir(tmp_path)
    t = TrialRecord(id="t1", kind="candidate", round=1, seed=0, rewards=["abc"], candidate_id="abc")
    s.upsert_trial(t)
    t.state, t.metrics, t.curves = "done", {"steps": 4}, [{"step": 1, "reward": 0.5}]
    s.upsert_trial(t)
    got = s.trial("t1")
    assert got and got.state == "done" and got.metrics == {"steps": 4} and got.curves[0]["reward"] == 0.5
    e = EvalRecord(trial_id="t1", split="dev", item_ids=["a", "b"], correct=[1, 0], flex_correct=[1, 1],
                   extracted=[1, 0], accuracy=0.5, flex_accuracy=1.0, extraction_rate=0.5, f1=2 / 3,
                   ci95=(0.1, 0.9))
    s.add_eval(e)
    back = s.eval("t1", "dev")
    assert back and back.correct == [1, 0] and back.ci95 == (0.1, 0.9) and back.n == 2


def test_failed_transaction_leaves_store_intact(tmp_path: Path) -> None:
    s = Store.in_dir(tmp_path)
    s.add_candidates([_spec(1)])
    with pytest.raises(RuntimeError), s.tx():
        s.db.execute("UPDATE candidates SET state='evaluated'")
        raise RuntimeError("crash mid-transaction")
    assert s.candidate(_spec(1).id)["state"] == "proposed"  # type: ignore[index]


def test_nested_transactions_commit_together_or_not_at_all(tmp_path: Path) -> None:
    s = Store.in_dir(tmp_path)
    with pytest.raises(RuntimeError):
        with s.tx():
            s.set_meta("a", 1)
            s.event("inside")
            raise RuntimeError("killed half-way")
    assert s.get_meta("a") is None and s.events("inside") == []
    with s.tx():
        s.set_meta("a", 2)
        s.event("inside")
    reopened = Store.in_dir(tmp_path)
    assert reopened.get_meta("a") == 2 and len(reopened.events("inside")) == 1
