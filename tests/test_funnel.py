"""The per-round candidate funnel, read from a run store written through the store's own API.

    python -m pytest tests/test_funnel.py -q
"""

from __future__ import annotations

from pathlib import Path

from rewardsearch.rewards.spec import RewardSpec
from rewardsearch.search.funnel import round_funnel
from rewardsearch.store import Store


def _spec(name: str, rnd: int, origin: str = "llm") -> RewardSpec:
    src = f"def {name}(prompts, completions, answer, **kwargs):\n    return [len('{name}')] * len(completions)\n"
    return RewardSpec(name=name, source=src, origin=origin, round=rnd, entrypoint=name)


def test_each_stage_is_counted_per_round(tmp_path: Path) -> None:
    store = Store.in_dir(tmp_path)
    a, b, c, d = (_spec(n, 1) for n in ("a", "b", "c", "d"))
    # round 1: one answer of 6 items: 4 candidates, 1 unreadable, 1 source duplicate; a retry that is not counted
    store.add_proposer_call({"round": 1, "proposer": "llm", "call": 0, "attempt": 0, "status": "retry",
                            "error": "HTTP 503"})
    store.add_proposer_call({
        "round": 1, "proposer": "llm", "call": 0, "attempt": 1, "status": "ok", "completion_tokens": 300,
        "latency_s": 10.0,
        "parsed": [{"id": s.id} for s in (a, b, c, d)],
        "dropped": [{"index": 4, "name": None, "reason": "item 4 has no 'code' string"},
                    {"index": 5, "name": "a2", "reason": f"duplicate of {a.id} (same normalized source)"}],
    })
    store.add_candidates([a, b, c, d], proposed_round=1)
    store.add_check(b.id, "static", False, "syntax error", [], {})
    for s in (a, c, d):
        store.add_check(s.id, "static", True, None, [], {})
    store.add_check(c.id, "probe", False, "constant reward", [], {})
    store.add_check(a.id, "probe", True, None, [], {})
    store.add_check(d.id, "probe", True, None, [], {})
    store.set_candidate_state(b.id, "rejected", "static: syntax error")
    store.set_candidate_state(c.id, "rejected", "probe: constant reward")
    store.set_candidate_state(d.id, "rejected", f"dedup: duplicate of {a.id}")
    store.set_candidate_state(a.id, "evaluated")
    # round 2: a proposer without calls (evolve): its candidates are its proposals
    e = _spec("e", 2, origin="evolve")
    store.add_candidates([e], proposed_round=2)
    store.add_check(e.id, "static", True, None, [], {})
    store.set_candidate_state(e.id, "accepted")

    r1, r2 = round_funnel(store)
    assert r1 == {"round": 1, "calls": 1, "proposed": 6, "parsed": 5, "unreadable": 1, "duplicates": 2,
                  "candidates": 4, "passed_static": 3, "passed_probes": 2, "trained": 1, "last_rung": 1,
                  "refills": 0, "refilled": 0, "completion_tokens": 300, "request_s": 10.0, "tokens_per_s": 30.0}
    assert (r2["round"], r2["proposed"], r2["parsed"], r2["passed_static"], r2["passed_probes"], r2["trained"]) \
        == (2, 1, 1, 1, 0, 0)
    assert r2["tokens_per_s"] is None


def test_with_halving_trained_counts_every_trial_and_last_rung_the_promoted(tmp_path: Path) -> None:
    from rewardsearch.store import TrialRecord

    store = Store.in_dir(tmp_path)
    kept, dropped, dead, rejected = (_spec(n, 1, origin="evolve") for n in ("kept", "dropped", "dead", "rejected"))
    store.add_candidates([kept, dropped, dead, rejected], proposed_round=1)
    store.set_candidate_state(kept.id, "evaluated")
    store.set_candidate_state(dropped.id, "dropped", "dropped at rung 1/2")
    store.set_candidate_state(dead.id, "failed", "early stop at step 5/30: non-finite loss")
    store.set_candidate_state(rejected.id, "rejected", "prescreen: no spread")
    # the failed one trained for a while (its trial ran); the rejected one never got a trial
    store.upsert_trial(TrialRecord(id="t-dead", kind="candidate", round=1, seed=0, rewards=[dead.id],
                                   candidate_id=dead.id, state="failed"))
    (r1,) = round_funnel(store)
    assert (r1["candidates"], r1["trained"], r1["last_rung"]) == (4, 3, 1)
