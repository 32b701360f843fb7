"""The whole loop with `proposer.name=llm` against a loopback chat-completions server, then replayed offline.

    python -m pytest tests/test_llm_e2e.py -q

A 2-round run on the tiny model: the server answers from `llm_server.POOL`, which holds a reward importing `os`
(rejected by the static check) and a behavioural twin of a round-1 reward (rejected as a duplicate). The
second round's prompt must carry the first round's ranked dev results and the rejection; the key must appear
nowhere in the run directory or the output; a replay of the run from its store reproduces the candidate ids.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from llm_server import FakeLLM, pool_responder  # noqa: E402
from test_e2e import CLI, _overrides, _status  # noqa: E402

pytestmark = pytest.mark.slow

KEY = "sk-e2e-0123456789abcdefSECRET"
KEY_ENV = "RS_E2E_LLM_KEY"


def _ids(status: dict) -> list[tuple[int, str, str]]:
    return sorted((c["round"], c["id"], c["name"]) for c in status["candidates"][1:])


def test_llm_run_then_replay_reproduces_the_candidates(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    run_dir = tmp_path / "llm"
    with FakeLLM(pool_responder()) as llm:
        proc = subprocess.run(
            [*CLI, "run", "--preset", "smoke", "--out", str(run_dir), *_overrides(tiny_model_dir),
             "proposer.name=llm", f"proposer.base_url={llm.url}", "proposer.model=fake-model",
             f"proposer.api_key_env={KEY_ENV}", "proposer.timeout_s=10",
             "search.refills=0"],  # the scripted pool is sized for exactly two calls
            capture_output=True, text=True, timeout=900,
        )
        prompts = llm.prompts()
    assert proc.returncode == 0, proc.stderr[-3000:]
    st = _status(run_dir)
    assert st["status"] == "done" and st["rounds_done"] == 2 and st["proposer"] == "llm"
    rows = {c["name"]: c for c in st["candidates"][1:]}
    assert {c["origin"] for c in rows.values()} == {"llm"} and len(rows) == 4
    assert rows["uses_os"]["state"] == "rejected" and "import" in rows["uses_os"]["reason"]
    twin = rows["last_number_match_v2"]
    assert twin["state"] == "rejected" and f"duplicate of {rows['last_number_match']['id']}" in twin["reason"]
    lead = rows["last_number_match"]
    assert lead["state"] == "evaluated" and rows["tag_partial"]["round"] == 2

    # round 2 was told round 1's dev result and why uses_os was rejected
    assert len(prompts) == 2
    acc = lead["dev"]["accuracy"]
    assert f"last_number_match (id {lead['id']}, round 1): dev accuracy {acc:.3f}" in prompts[1]
    assert "- uses_os (round 1, rejected): static:" in prompts[1]
    assert "Base rewards only: dev accuracy" in prompts[1]

    # the key went to the server and nowhere else
    assert KEY not in proc.stdout + proc.stderr
    for f in run_dir.rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f

    # replayed offline from the run's store: the same candidates, by id, round by round
    again = tmp_path / "replay"
    proc = subprocess.run(
        [*CLI, "run", "--preset", "smoke", "--out", str(again), *_overrides(tiny_model_dir),
         "proposer.name=replay", f"proposer.path={run_dir}",
         "search.refills=0"],  # the recorded run's config: a refill would ask the cassette for an answer it lacks
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    st2 = _status(again)
    assert _ids(st2) == _ids(st)
    assert {c["origin"] for c in st2["candidates"][1:]} == {"replay"}
    from rewardsearch.store import Store

    calls = Store.in_dir(again).proposer_calls()
    assert [c["round"] for c in calls] == [1, 2] and all(c["status"] == "ok" for c in calls)
    print(json.dumps({"llm": _ids(st), "replay_prompt_matches": [c["meta"].get("prompt_matches") for c in calls]}))
