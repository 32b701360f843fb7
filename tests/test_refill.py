"""Rejection refill (`search.refills`): a candidate rejected by the static check, the probes or as a duplicate is
replaced within its round by asking the proposer again, with the rejection's one-line reason in the prompt.

    python -m pytest tests/test_refill.py -q

Real components: the `llm` proposer over HTTP against a scripted server on 127.0.0.1 (`llm_server.FakeLLM`) that
answers first with a broken candidate (an unchecked `blocks[0]`: IndexError on an answer without tags, caught by
the sandboxed probes), then with the fixed one; the real sandbox; the run store and its funnel. The slow test runs
the whole CLI on the tiny model, so the fixed candidate is trained.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rewardsearch.config import Config, TaskConfig
from rewardsearch.propose.base import make_proposer
from rewardsearch.search.funnel import round_funnel
from rewardsearch.store import Store
from rewardsearch.tasks import load_task

sys.path.insert(0, str(Path(__file__).parent))
from llm_server import FakeLLM, answer_json, ok  # noqa: E402

TASK = load_task(TaskConfig(), 0)

BROKEN = {"name": "solution_match", "description": "exact match inside the solution tags", "code": '''import re


def solution_match(prompts, completions, answer, **kwargs):
    out = []
    for c, gold in zip(completions, answer):
        text = c[-1]["content"] if isinstance(c, list) else str(c)
        block = re.findall(r"<solution>(.*?)</solution>", text, re.DOTALL)[0]
        out.append(1.0 if block.strip() == str(gold).strip() else 0.0)
    return out
'''}
FIXED = {"name": "solution_match_checked", "description": "the same, for an answer with one solution block",
         "code": '''import re


def solution_match_checked(prompts, completions, answer, **kwargs):
    out = []
    for c, gold in zip(completions, answer):
        text = c[-1]["content"] if isinstance(c, list) else str(c)
        blocks = re.findall(r"<solution>(.*?)</solution>", text, re.DOTALL)
        if len(blocks) != 1:
            out.append(0.0)
            continue
        out.append(1.0 if blocks[0].strip() == str(gold).strip() else 0.0)
    return out
'''}
STATIC_BAD = {"name": "reads_env", "description": "must be rejected", "code":
              "import os\n\n\ndef reads_env(prompts, completions, answer, **kwargs):\n"
              "    return [float(len(os.environ))] * len(completions)\n"}
REASON = ("probe: call failed (whole pool, batch of 64): error: IndexError: list index out of range (reward line 8); "
          "check that a list is not empty before taking an item")


def _script(*items: dict) -> list:
    return [ok("```json\n" + answer_json([item]) + "\n```") for item in items]


def _search(run_dir: Path, url: str, refills: int, **proposer):
    """A search of one candidate a round against the fake server; `proposer`: more proposer settings."""
    from rewardsearch.search.loop import Search

    cfg = Config.model_validate({
        "proposer": {"name": "llm", "base_url": url, "model": "fake-model", "timeout_s": 10.0, "backoff_s": 0.05,
                     **proposer},
        "search": {"candidates_per_round": 1, "refills": refills},
    })
    store = Store.in_dir(run_dir)
    s = Search(run_dir, cfg, store)
    s.task = TASK
    s.proposer = make_proposer(cfg.proposer, store=store)
    return s, store


def test_a_probe_rejection_is_refilled_with_its_reason_in_the_prompt(tmp_path: Path) -> None:
    with FakeLLM(_script(BROKEN, FIXED)) as llm:
        search, store = _search(tmp_path, llm.url, refills=2)
        search.propose_and_check(1)
        prompts = llm.prompts()
    assert len(prompts) == 2, "one refill ask, then the round was full"
    note = f"your previous candidate solution_match was rejected: {REASON}; fix it"
    assert note not in prompts[0] and note in prompts[1]
    by_name = {c["name"]: c for c in store.candidates(round=1)}
    assert by_name["solution_match"]["state"] == "rejected"
    assert by_name["solution_match"]["reason"] == REASON
    fixed = by_name["solution_match_checked"]
    assert fixed["state"] == "accepted" and fixed["meta"]["refill"] == "refill_1_1"
    assert store.get_meta("refill_1_1") and not store.get_meta("refill_1_2")
    # the funnel counts both proposals and both verdicts; the refill is shown as one ask giving one candidate
    (row,) = round_funnel(store)
    assert (row["calls"], row["proposed"], row["parsed"], row["candidates"]) == (2, 2, 2, 2)
    assert (row["passed_static"], row["passed_probes"], row["duplicates"]) == (2, 1, 0)
    assert (row["refills"], row["refilled"]) == (1, 1)
    # the second request was recorded as the refill it was
    calls = store.proposer_calls(status="ok")
    assert [c["meta"].get("refill") for c in calls] == [None, "refill_1_1"]
    # as on resume: nothing is asked twice
    with FakeLLM([]) as llm:
        search.proposer = make_proposer(search.cfg.proposer.model_copy(update={"base_url": llm.url}), store=store)
        search.propose_and_check(1)
        assert llm.requests == []


def test_refills_are_bounded_and_every_rejection_is_noted(tmp_path: Path) -> None:
    # a static rejection, then the probe bug; the fix is never asked for: refills=1 stops after one refill ask
    with FakeLLM(_script(STATIC_BAD, BROKEN, BROKEN, FIXED)) as llm:
        search, store = _search(tmp_path, llm.url, refills=1)
        search.propose_and_check(1)
        prompts = llm.prompts()
    assert len(prompts) == 2
    assert "your previous candidate reads_env was rejected: static:" in prompts[1]
    states = {c["name"]: c["state"] for c in store.candidates(round=1)}
    assert states == {"reads_env": "rejected", "solution_match": "rejected"}
    (row,) = round_funnel(store)
    assert (row["proposed"], row["passed_static"], row["passed_probes"], row["refills"], row["refilled"]) \
        == (2, 1, 0, 1, 1)


def test_refills_zero_asks_once(tmp_path: Path) -> None:
    with FakeLLM(_script(BROKEN, FIXED)) as llm:
        search, store = _search(tmp_path, llm.url, refills=0)
        search.propose_and_check(1)
        assert len(llm.requests) == 1
    (row,) = round_funnel(store)
    assert (row["refills"], row["refilled"], row["passed_probes"]) == (0, 0, 0)


def test_refills_must_not_be_negative() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="refills"):
        Config.model_validate({"search": {"refills": -1}})


@pytest.mark.slow
def test_run_trains_the_fixed_candidate(tmp_path: Path, tiny_model_dir: Path) -> None:
    from test_e2e import CLI, _overrides, _status

    run_dir = tmp_path / "run"
    with FakeLLM(_script(BROKEN, FIXED)) as llm:
        proc = subprocess.run(
            [*CLI, "run", "--preset", "smoke", "--out", str(run_dir), *_overrides(tiny_model_dir),
             "proposer.name=llm", f"proposer.base_url={llm.url}", "proposer.model=fake-model",
             "proposer.timeout_s=10", "task.answer_format=tags", "search.rounds=1", "search.candidates_per_round=1", "search.refills=1"],
            capture_output=True, text=True, timeout=900,
        )
        prompts = llm.prompts()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(prompts) == 2 and f"solution_match was rejected: {REASON}; fix it" in prompts[1]
    st = _status(run_dir)
    rows = {c["name"]: c for c in st["candidates"][1:]}
    assert rows["solution_match"]["state"] == "rejected"
    assert rows["solution_match_checked"]["state"] == "evaluated"
    (row,) = st["funnel"]
    assert (row["proposed"], row["parsed"], row["passed_static"], row["passed_probes"], row["duplicates"],
            row["trained"], row["refills"], row["refilled"]) == (2, 2, 2, 1, 0, 1, 1, 1)
    proc = subprocess.run([*CLI, "report", str(run_dir)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    md = (run_dir / "report" / "report.md").read_text()
    assert "| refills (candidates) |" in md and "| 1 (1) |" in md
    print(json.dumps(row))
