"""The `llm` proposer against a real HTTP server on 127.0.0.1 speaking the chat-completions protocol.

    python -m pytest tests/test_llm_proposer.py -q

Scripted answers: good JSON, JSON in fences with prose, one malformed item, duplicates, 429 with Retry-After,
500 then success, a hang (client timeout), invalid UTF-8, a rejected response_format, a bad key. Each test
asserts what reached the run store and what was retried; the key must appear nowhere but in the request header.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import pytest

from rewardsearch.config import Config, ProposerConfig, TaskConfig
from rewardsearch.propose.base import ProposerError, RoundContext, make_proposer
from rewardsearch.propose.llm import LLMProposer
from rewardsearch.rewards.spec import RewardSpec
from rewardsearch.store import Store
from rewardsearch.tasks import load_task

sys.path.insert(0, str(Path(__file__).parent))
from llm_server import POOL, FakeLLM, answer_json, completion_body, hang, ok, raw, status  # noqa: E402

KEY = "sk-test-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
KEY_ENV = "RS_TEST_LLM_KEY"
TASK = load_task(TaskConfig(), 0)


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


def _cfg(url: str, **kw) -> ProposerConfig:
    base = {"name": "llm", "base_url": url, "model": "fake-model", "api_key_env": KEY_ENV, "backoff_s": 0.05,
            "timeout_s": 5.0, "max_retries": 3}
    return ProposerConfig(**{**base, **kw})


def _ctx(round: int = 1, existing: set[str] | None = None) -> RoundContext:
    return RoundContext(round=round, seed=0, task_card=TASK.card(), samples=TASK.split("train")[:3],
                        existing_ids=existing or set())


def _store_bytes(tmp_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in tmp_path.glob("run.sqlite*"))


# --- answers -----------------------------------------------------------------------------------------------------


def test_good_json_reaches_the_store_with_tokens_latency_and_cost(tmp_path: Path) -> None:
    store = Store.in_dir(tmp_path)
    with FakeLLM([ok(answer_json(POOL[:2]), prompt_tokens=1000, completion_tokens=500)]) as llm:
        prop = make_proposer(_cfg(llm.url, price_input_per_mtok=2.0, price_output_per_mtok=10.0), store=store)
        specs = prop.propose(_ctx(), 2)
    assert [s.name for s in specs] == ["last_number_match", "uses_os"]
    assert all(s.origin == "llm" and s.round == 1 for s in specs)
    (call,) = store.proposer_calls()
    assert call["status"] == "ok" and call["proposer"] == "llm" and call["attempt"] == 0
    assert call["request"]["model"] == "fake-model" and call["request"]["response_format"]["type"] == "json_schema"
    assert call["request"]["messages"][0]["role"] == "system" and "def <name>(prompts" in \
        call["request"]["messages"][0]["content"]
    assert json.loads(call["content"])["candidates"][0]["name"] == "last_number_match"
    assert [p["id"] for p in call["parsed"]] == [s.id for s in specs]
    assert (call["prompt_tokens"], call["completion_tokens"]) == (1000, 500)
    assert call["cost_usd"] == pytest.approx((1000 * 2.0 + 500 * 10.0) / 1e6)
    assert call["latency_s"] > 0 and call["prompt_sha"]
    # what was sent: the model, the prompt, the key in the header (and only there)
    (req,) = llm.requests
    assert req["path"] == "/v1/chat/completions" and req["body"]["model"] == "fake-model"
    assert any(v == f"Bearer {KEY}" for v in req["headers"].values())


def test_json_in_code_fences_with_prose_is_read() -> None:
    answer = "Great question! Here are my rewards.\n```json\n" + json.dumps(POOL[2:4]) + "\n```\nGood luck!"
    with FakeLLM([ok(answer)]) as llm:
        prop = LLMProposer(_cfg(llm.url))
        specs = prop.propose(_ctx(), 2)
    assert [s.name for s in specs] == ["tag_partial", "last_number_match_v2"]
    assert prop.calls[0]["meta"]["parse"] == "fenced json"


def test_one_malformed_item_keeps_the_good_ones_and_the_next_call_hears_why(tmp_path: Path) -> None:
    store = Store.in_dir(tmp_path)
    bad = {"name": "no_code_here", "description": "forgot the code"}
    script = [ok(answer_json([POOL[0], bad, POOL[2]])), ok(answer_json([POOL[4]]))]
    with FakeLLM(script) as llm:
        specs = LLMProposer(_cfg(llm.url, batch_size=3), store=store).propose(_ctx(), 3)
        second_prompt = llm.prompts()[1]
    assert [s.name for s in specs] == ["last_number_match", "tag_partial", "short_and_numeric"]
    first = store.proposer_calls()[0]
    assert [d["name"] for d in first["dropped"]] == ["no_code_here"]
    assert "has no 'code' string" in first["dropped"][0]["reason"]
    # the follow-up call asks for the one missing, names what the round holds and what was wrong
    assert "write 1 new reward function" in second_prompt
    assert "last_number_match" in second_prompt and "has no 'code' string" in second_prompt


def test_duplicates_in_the_batch_and_in_the_run_are_dropped_with_the_id(tmp_path: Path) -> None:
    store = Store.in_dir(tmp_path)
    existing = RewardSpec(name="x", source=POOL[0]["code"]).id
    cosmetic = {**POOL[2], "name": "tag_partial_again", "code": POOL[2]["code"] + "\n# a comment\n"}
    with FakeLLM([ok(answer_json([POOL[0], POOL[2], cosmetic, POOL[4]]))]) as llm:
        specs = LLMProposer(_cfg(llm.url, max_calls_per_round=1), store=store).propose(_ctx(existing={existing}), 4)
    assert [s.name for s in specs] == ["tag_partial", "short_and_numeric"]
    reasons = [d["reason"] for d in store.proposer_calls()[0]["dropped"]]
    assert reasons == [f"duplicate of {existing} (same normalized source)",
                       f"duplicate of {specs[0].id} (same normalized source)"]


def test_invalid_utf8_is_decoded_with_replacement_and_noted(tmp_path: Path) -> None:
    store = Store.in_dir(tmp_path)
    body = completion_body(answer_json([POOL[0], POOL[2]])).replace(b"pays when", b"pays \xff\xfe\xc3 when")
    with FakeLLM([raw(body)]) as llm:
        specs = LLMProposer(_cfg(llm.url), store=store).propose(_ctx(), 2)
    assert [s.name for s in specs] == ["last_number_match", "tag_partial"]
    assert "\ufffd" in specs[0].description
    call = store.proposer_calls()[0]
    assert call["status"] == "ok" and "not valid UTF-8" in call["meta"]["notes"][0]


# --- resilience ----------------------------------------------------------------------------------------------


def test_429_honours_retry_after_and_is_recorded(tmp_path: Path) -> None:
    store = Store.in_dir(tmp_path)
    with FakeLLM([status(429, retry_after="1"), ok(answer_json(POOL[:1]))]) as llm:
        t0 = time.monotonic()
        specs = LLMProposer(_cfg(llm.url), store=store).propose(_ctx(), 1)
        waited = time.monotonic() - t0
        assert len(llm.requests) == 2
    assert len(specs) == 1 and waited >= 1.0  # backoff alone would have waited ~0.05s
    retry, done = store.proposer_calls()
    assert retry["status"] == "retry" and "HTTP 429" in retry["error"] and retry["meta"]["retry_after"] == 1.0
    assert retry["meta"]["wait_s"] >= 1.0
    assert (done["status"], done["attempt"]) == ("ok", 1)


def test_a_retry_after_beyond_the_backoff_cap_fails_at_once() -> None:
    with FakeLLM([status(429, retry_after="3600")]) as llm:
        t0 = time.monotonic()
        with pytest.raises(ProposerError, match=r"asks to wait 3600s \(Retry-After\).*backoff_max_s=60"):
            LLMProposer(_cfg(llm.url)).propose(_ctx(), 1)
        assert time.monotonic() - t0 < 5


def test_500_then_success_is_retried_with_backoff(tmp_path: Path) -> None:
    store = Store.in_dir(tmp_path)
    with FakeLLM([status(500), status(503), ok(answer_json(POOL[:1]))]) as llm:
        specs = LLMProposer(_cfg(llm.url), store=store).propose(_ctx(), 1)
    assert len(specs) == 1
    calls = store.proposer_calls()
    assert [c["status"] for c in calls] == ["retry", "retry", "ok"]
    assert [c["attempt"] for c in calls] == [0, 1, 2]
    assert "HTTP 500" in calls[0]["error"] and "HTTP 503" in calls[1]["error"]
    assert calls[1]["meta"]["wait_s"] > 0 and calls[0]["meta"]["retry_after"] is None


def test_a_hung_endpoint_times_out_and_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    store = Store.in_dir(tmp_path)
    with FakeLLM([hang(10), hang(10)]) as llm:
        t0 = time.monotonic()
        with pytest.raises(ProposerError) as err:
            LLMProposer(_cfg(llm.url, timeout_s=0.5, max_retries=1), store=store).propose(_ctx(), 1)
        elapsed = time.monotonic() - t0
    assert elapsed < 4, elapsed
    msg = str(err.value)
    assert msg.startswith(f"proposer endpoint {llm.url} (model fake-model): no answer within proposer.timeout_s=0.5s")
    assert "gave up after 2 attempts (proposer.max_retries=1)" in msg and "\n" not in msg
    assert [c["status"] for c in store.proposer_calls()] == ["retry", "error"]


def test_an_endpoint_rejecting_json_schema_is_asked_again_without_it(tmp_path: Path) -> None:
    store = Store.in_dir(tmp_path)
    script = [status(400, message="response_format json_schema is not supported"), ok(answer_json(POOL[:1])),
              ok(answer_json(POOL[2:3]))]
    with FakeLLM(script) as llm:
        prop = LLMProposer(_cfg(llm.url), store=store)
        prop.propose(_ctx(), 1)
        prop.propose(_ctx(round=2), 1)
        sent = [r["body"].get("response_format", {}).get("type") for r in llm.requests]
    assert sent == ["json_schema", "json_object", "json_object"]  # the downgrade holds for the rest of the run
    assert [c["status"] for c in store.proposer_calls()] == ["fallback", "ok", "ok"]


# llama-cpp-python 0.3.x's server: a json_schema response_format is a validation error it answers with HTTP 500
_LLAMA_500 = ("[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': \"Input should be "
              "'text' or 'json_object'\", 'input': 'json_schema'}]")


def test_a_500_that_names_response_format_steps_down_at_once_without_a_retry(tmp_path: Path) -> None:
    store = Store.in_dir(tmp_path)
    script = [status(500, message=_LLAMA_500), ok(answer_json(POOL[:1]))]
    with FakeLLM(script) as llm:
        specs = LLMProposer(_cfg(llm.url, max_retries=0), store=store).propose(_ctx(), 1)  # no retry to spend
        sent = [r["body"].get("response_format") for r in llm.requests]
    assert [s.name for s in specs] == ["last_number_match"]
    assert sent[0]["type"] == "json_schema"
    # one step down: the schema is still sent, in the json_object form that llama.cpp compiles to a grammar
    assert sent[1]["type"] == "json_object" and sent[1]["schema"]["required"] == ["candidates"]
    calls = store.proposer_calls()
    assert [c["status"] for c in calls] == ["fallback", "ok"] and "HTTP 500" in calls[0]["error"]
    assert calls[1]["meta"]["json_mode"] == "grammar"


def test_a_500_about_something_else_is_still_retried_not_stepped_down(tmp_path: Path) -> None:
    store = Store.in_dir(tmp_path)
    with FakeLLM([status(500, message="CUDA out of memory"), ok(answer_json(POOL[:1]))]) as llm:
        LLMProposer(_cfg(llm.url), store=store).propose(_ctx(), 1)
        sent = [r["body"]["response_format"]["type"] for r in llm.requests]
    assert sent == ["json_schema", "json_schema"]
    assert [c["status"] for c in store.proposer_calls()] == ["retry", "ok"]


def test_a_429_naming_response_format_waits_instead_of_stepping_down(tmp_path: Path) -> None:
    store = Store.in_dir(tmp_path)
    with FakeLLM([status(429, message="rate limit for response_format requests"), ok(answer_json(POOL[:1]))]) as llm:
        LLMProposer(_cfg(llm.url), store=store).propose(_ctx(), 1)
    assert [c["status"] for c in store.proposer_calls()] == ["retry", "ok"]


def test_the_compact_prompt_s_example_copied_verbatim_is_dropped_as_a_duplicate(tmp_path: Path) -> None:
    from rewardsearch.propose.prompt import example_source

    copy = {"name": "close_answer_in_solution", "code": example_source(), "description": "the example"}
    store = Store.in_dir(tmp_path)
    with FakeLLM([ok(answer_json([copy, POOL[0]]))]) as llm:
        specs = LLMProposer(_cfg(llm.url, prompt_style="compact", max_calls_per_round=1), store=store).propose(
            _ctx(), 2)
        system = llm.requests[0]["body"]["messages"][0]["content"]
    assert "def close_answer_in_solution(" in system  # the example was shown ...
    assert [s.name for s in specs] == ["last_number_match"]  # ... and its copy is no proposal
    (call,) = store.proposer_calls()
    assert call["dropped"][0]["reason"].startswith("duplicate of the prompt's example")


def test_a_bad_key_is_a_one_line_error_naming_the_variable_and_keeps_the_partial_round() -> None:
    script = [ok(answer_json(POOL[:1])), status(401, message="invalid api key")]
    with FakeLLM(script) as llm:
        with pytest.raises(ProposerError) as err:
            LLMProposer(_cfg(llm.url, batch_size=1)).propose(_ctx(), 2)
    assert "HTTP 401" in str(err.value) and f"check the key in ${KEY_ENV}" in str(err.value)
    assert [s.name for s in err.value.partial] == ["last_number_match"]
    assert len(llm.requests) == 2  # a 4xx is not retried


def test_the_call_budget_stops_proposing_cleanly_and_survives_a_restart(tmp_path: Path) -> None:
    store = Store.in_dir(tmp_path)
    script = [status(500), ok(answer_json(POOL[:1])), ok(answer_json(POOL[2:3]))]
    with FakeLLM(script) as llm:
        prop = LLMProposer(_cfg(llm.url, batch_size=1, budget_calls=2), store=store)
        specs = prop.propose(_ctx(), 3)
        assert [s.name for s in specs] == ["last_number_match"] and len(llm.requests) == 2
        assert "proposer.budget_calls=2" in prop.exhausted
        # a new proposer on the same store (resume) knows the budget is spent and sends nothing
        again = LLMProposer(_cfg(llm.url, batch_size=1, budget_calls=2), store=store)
        assert again.exhausted and again.propose(_ctx(round=2), 1) == [] and len(llm.requests) == 2


def test_the_money_budget_refuses_a_call_that_could_overrun_it(tmp_path: Path) -> None:
    store = Store.in_dir(tmp_path)
    # $1/M in, $100/M out, 1000 max tokens: each call may cost up to ~$0.1; $0.15 allows one
    cfg = _cfg("http://127.0.0.1:9/v1", price_input_per_mtok=1.0, price_output_per_mtok=100.0, max_tokens=1000,
               budget_usd=0.15)
    with FakeLLM([ok(answer_json(POOL[:1]), prompt_tokens=3000, completion_tokens=900)] * 3) as llm:
        prop = LLMProposer(cfg.model_copy(update={"base_url": llm.url}), store=store)
        assert len(prop.propose(_ctx(), 1)) == 1
        assert prop.propose(_ctx(round=2), 1) == [] and len(llm.requests) == 1
    assert "proposer.budget_usd=0.15" in prop.exhausted
    assert store.proposer_spend("llm")["cost_usd"] == pytest.approx((3000 * 1 + 900 * 100) / 1e6)


def test_the_api_key_appears_nowhere_in_the_store_or_the_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store = Store.in_dir(tmp_path)
    # the model even echoes the key back inside its code and description
    leaky = {**POOL[0], "description": f"uses {KEY}", "code": POOL[0]["code"] + f'\n_K = "{KEY}"\n'}
    script = [status(429, retry_after="0", message=f"bad key {KEY}"), ok(answer_json([leaky])), hang(5), hang(5)]
    with FakeLLM(script) as llm:
        prop = LLMProposer(_cfg(llm.url, timeout_s=0.3, max_retries=1), store=store)
        specs = prop.propose(_ctx(), 1)
        with pytest.raises(ProposerError) as err:
            prop.propose(_ctx(round=2), 1)
        assert all(any(KEY in v for v in r["headers"].values()) for r in llm.requests)  # it was sent...
    store.add_candidates(specs)
    store.close()
    assert KEY.encode() not in _store_bytes(tmp_path)  # ...but never kept
    assert KEY not in caplog.text and KEY not in str(err.value)
    assert "[REDACTED]" in specs[0].source


# --- the prompt across rounds, through the loop ------------------------------------------------------------------


def _search(tmp_path: Path, url: str, mode: str = "feedback", top: int = 5, **proposer):
    from rewardsearch.search.loop import Search

    cfg = Config.model_validate({
        "proposer": {"name": "llm", "base_url": url, "model": "fake-model", "api_key_env": KEY_ENV,
                     "backoff_s": 0.05, **proposer},
        "search": {"candidates_per_round": 3, "mode": mode, "feedback_top": top, "feedback_bottom": 1},
    })
    store = Store.in_dir(tmp_path)
    s = Search(tmp_path, cfg, store)
    s.task = TASK
    s.proposer = make_proposer(cfg.proposer, store=store)
    return s, store


TEST_ACC = 0.918273  # a number that must never reach a prompt


def _score_round_one(store: Store) -> dict[str, str]:
    """Round 1's fate, written as the loop would: two trained (dev and test evals), one rejected."""
    from rewardsearch.search.ranking import trial_id_for
    from rewardsearch.store import EvalRecord, TrialRecord

    ids = {c["name"]: c["id"] for c in store.candidates(round=1)}
    store.set_candidate_state(ids["uses_os"], "rejected", "static: line 1: import of 'os' is not allowed")
    for name, dev in (("last_number_match", 0.4375), ("tag_partial", 0.1875)):
        cid = ids[name]
        store.upsert_trial(TrialRecord(
            id=trial_id_for(cid, 0), kind="candidate", round=1, seed=0, rewards=[cid], candidate_id=cid,
            state="done", curves=[{"step": 1, f"rewards/{name}/mean": 0.5, "frac_reward_zero_std": 0.25,
                                   "completions/mean_length": 42.0, "kl": 0.0123}],
        ))
        for split, acc in (("dev", dev), ("test", TEST_ACC)):
            store.add_eval(EvalRecord(
                trial_id=trial_id_for(cid, 0), split=split, item_ids=["a"] * 16, correct=[1] * 16,
                flex_correct=[1] * 16, extracted=[1] * 16, accuracy=acc, flex_accuracy=acc, extraction_rate=0.8125,
                f1=2 * acc / (1 + acc), ci95=(0.2314, 0.6627) if split == "dev" else (0.777777, 0.999999),
            ))
        store.set_candidate_state(cid, "evaluated", flags=["format_only"] if name == "tag_partial" else [])
    return ids


def test_round_two_prompt_carries_ranked_dev_feedback_and_rejections_but_no_test_numbers(tmp_path: Path) -> None:
    with FakeLLM([ok(answer_json([POOL[0], POOL[1], POOL[2]])), ok(answer_json(POOL[4:6]))]) as llm:
        search, store = _search(tmp_path, llm.url, top=1)
        search._propose(1)
        _score_round_one(store)
        search.cfg.search.candidates_per_round = 2
        search._propose(2)
        first, second = llm.prompts()
    assert "Results so far" in first and "No candidate has been trained yet" in first
    best, worst = second.index("### Best candidates"), second.index("### Worst candidates")
    rejected = second.index("### Rejected or failed")
    # ranked on dev: the better candidate first, with its CI, extraction, curves and its source
    assert best < second.index("last_number_match (id") < worst < second.index("tag_partial (id") < rejected
    assert "dev accuracy 0.438 (95% CI [0.231, 0.663], n=16), extraction rate 0.81" in second
    assert "flags: format_only" in second
    assert ("mean reward last_number_match 0.500; zero-variance groups 0.25; completion length 42.0; KL 0.0123"
            in second)
    assert "def last_number_match(prompts, completions, answer, **kwargs):" in second
    assert "- uses_os (round 1, rejected): static: line 1: import of 'os' is not allowed" in second
    for prompt in llm.prompts():
        assert "0.918" not in prompt and "0.777" not in prompt and "0.999" not in prompt
    assert [c["round"] for c in store.proposer_calls()] == [1, 2]


def test_random_mode_sends_no_feedback_at_all(tmp_path: Path) -> None:
    with FakeLLM([ok(answer_json([POOL[0], POOL[1], POOL[2]])), ok(answer_json(POOL[4:6]))]) as llm:
        search, store = _search(tmp_path, llm.url, mode="random")
        search._propose(1)
        _score_round_one(store)
        search.cfg.search.candidates_per_round = 2
        search._propose(2)
        second = llm.prompts()[1]
    assert "Results so far" not in second and "0.438" not in second
    assert "last_number_match" not in second and "uses_os" not in second


def test_a_failed_round_keeps_its_candidates_and_resume_asks_only_for_the_rest(tmp_path: Path) -> None:
    with FakeLLM([ok(answer_json(POOL[:1])), status(403, message="forbidden")]) as llm:
        search, store = _search(tmp_path, llm.url, batch_size=1)
        with pytest.raises(ProposerError, match="HTTP 403"):
            search._propose(1)
    assert [c["name"] for c in store.candidates(round=1)] == ["last_number_match"]
    assert not store.get_meta("proposed_round_1") and store.events("propose_failed")[0]["kept"] == 1
    with FakeLLM([ok(answer_json(POOL[2:4]))]) as llm:
        search, store = _search(tmp_path, llm.url)
        search._propose(1)
        assert "write 2 new reward functions" in llm.prompts()[0]
    assert {c["name"] for c in store.candidates(round=1)} == {"last_number_match", "tag_partial",
                                                             "last_number_match_v2"}
    assert store.get_meta("proposed_round_1")
