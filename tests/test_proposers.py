"""The offline proposers (`replay`, `files`), behavioural de-duplication in the sandbox, and `random` mode.

    python -m pytest tests/test_proposers.py -q
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from rewardsearch.config import Config, ProposerConfig, TaskConfig
from rewardsearch.propose.base import ProposerNotAvailable, RoundContext, make_proposer
from rewardsearch.propose.files import FilesProposer
from rewardsearch.propose.llm import LLMProposer
from rewardsearch.propose.replay import ReplayProposer
from rewardsearch.rewards.spec import RewardSpec
from rewardsearch.store import EvalRecord, Store, TrialRecord
from rewardsearch.tasks import load_task

sys.path.insert(0, str(Path(__file__).parent))
from llm_server import POOL, FakeLLM, answer_json, pool_responder  # noqa: E402

TASK = load_task(TaskConfig(), 0)


def _ctx(round: int, existing: set[str]) -> RoundContext:
    return RoundContext(round=round, seed=0, task_card=TASK.card(), samples=TASK.split("train")[:3],
                        existing_ids=set(existing))


def _two_rounds(prop, store: Store | None = None) -> list[list[str]]:
    """Two rounds of 3 asked 2 at a time; returns the ids per round (what the loop would store)."""
    ids: list[list[str]] = []
    seen: set[str] = set()
    for r in (1, 2):
        specs = prop.propose(_ctx(r, seen), 3)
        ids.append([s.id for s in specs])
        seen |= {s.id for s in specs}
        if store is not None:
            store.add_candidates(specs, proposed_round=r)
    return ids


# --- replay ------------------------------------------------------------------------------------------------------


def test_replay_from_a_run_store_reproduces_the_candidate_ids(tmp_path: Path) -> None:
    first = Store.in_dir(tmp_path / "first")
    # the pool repeats itself (a duplicate the proposer must skip) so the calls per round vary
    with FakeLLM(pool_responder([0, 2, 0, 3, 4, 5, 1])) as llm:
        cfg = ProposerConfig(name="llm", base_url=llm.url, model="m", api_key_env="NO_SUCH_KEY", batch_size=2)
        recorded = _two_rounds(LLMProposer(cfg, store=first), first)
        calls = len(llm.requests)
    assert calls == 5 and len(recorded[0]) == 3 and len(recorded[1]) == 3  # round 1 took 3 calls
    again = Store.in_dir(tmp_path / "again")
    replay = make_proposer(ProposerConfig(name="replay", path=str(tmp_path / "first"), batch_size=2), store=again)
    assert isinstance(replay, ReplayProposer)
    assert _two_rounds(replay, again) == recorded
    rows = again.proposer_calls()
    assert len(rows) == calls and all(r["proposer"] == "replay" and r["cost_usd"] == 0 for r in rows)
    assert all(r["meta"]["prompt_matches"] for r in rows)  # same feedback, same prompts
    assert all(c["origin"] == "replay" for c in again.candidates())
    # a third round finds the cassette empty: the proposer says so instead of inventing
    assert replay.propose(_ctx(3, set()), 3) == [] and "no more answers for round 3" in replay.exhausted
    # and the replayed run can itself be replayed
    assert _two_rounds(make_proposer(ProposerConfig(name="replay", path=str(tmp_path / "again"), batch_size=2),
                                     store=None)) == recorded


def test_replay_from_a_jsonl_cassette_in_order(tmp_path: Path) -> None:
    cassette = tmp_path / "answers.jsonl"
    lines = [answer_json(POOL[:2]), {"content": "```json\n" + json.dumps([POOL[2]]) + "\n```"},
             {"choices": [{"message": {"content": answer_json([POOL[4]])}}]}]
    cassette.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    prop = make_proposer(ProposerConfig(name="replay", path=str(cassette), batch_size=2))
    a = prop.propose(_ctx(1, set()), 3)
    b = prop.propose(_ctx(2, {s.id for s in a}), 3)
    assert [s.name for s in a] == ["last_number_match", "uses_os", "tag_partial"]
    assert [s.name for s in b] == ["short_and_numeric"] and prop.exhausted


@pytest.mark.parametrize(
    ("content", "match"),
    [(None, "does not exist"), ("[]", "holds no answers"), ("{not json", "not valid JSON"), ("[3]", "expected a string")],
)
def test_a_bad_cassette_is_a_one_line_error(tmp_path: Path, content: str | None, match: str) -> None:
    path = tmp_path / "c.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ProposerNotAvailable, match=match):
        ReplayProposer(ProposerConfig(name="replay", path=str(path)))


# --- files -------------------------------------------------------------------------------------------------------


def test_files_proposer_takes_the_directory_in_name_order_then_runs_dry(tmp_path: Path) -> None:
    for name, code in (("b_tags", POOL[2]["code"]), ("a_last", POOL[0]["code"]), ("c_short", POOL[4]["code"])):
        (tmp_path / f"{name}.py").write_text(f'"""{name} reward, by hand."""\n' + code)
    (tmp_path / "notes.txt").write_text("not a reward")
    prop = FilesProposer(ProposerConfig(name="files", path=str(tmp_path)))
    first = prop.propose(_ctx(1, set()), 2)
    assert [(s.name, s.entrypoint, s.origin) for s in first] == [
        ("a_last", "last_number_match", "files"), ("b_tags", "tag_partial", "files")]
    assert first[0].description == "a_last reward, by hand." and prop.exhausted is None
    second = prop.propose(_ctx(2, {s.id for s in first}), 2)
    assert [s.name for s in second] == ["c_short"] and "all 3 reward files" in prop.exhausted
    with pytest.raises(ProposerNotAvailable, match="is not a directory"):
        FilesProposer(ProposerConfig(name="files", path=str(tmp_path / "nope")))


# --- the loop: behavioural de-duplication and random mode -------------------------------------------------------


def _search(tmp_path: Path, **cfg_tree):
    from rewardsearch.search.loop import Search

    cfg = Config.model_validate(cfg_tree)
    store = Store.in_dir(tmp_path)
    s = Search(tmp_path, cfg, store)
    s.task = TASK
    s.proposer = make_proposer(cfg.proposer, store=store)
    return s, store


def test_the_probe_dry_run_exposes_its_score_vector() -> None:
    from rewardsearch.config import SandboxConfig
    from rewardsearch.sandbox import check_reward

    spec = RewardSpec(name="last_number_match", source=POOL[0]["code"])
    samples = [(p.question, p.answer) for p in TASK.split("train")[:2]]
    probe = check_reward(spec, SandboxConfig(), samples)[-1]
    from rewardsearch.sandbox.probe import build_pool

    assert probe.ok and len(probe.details["scores"]) == probe.details["pool_size"]
    assert probe.details["pool_size"] >= len(build_pool(samples)) > 0
    assert any(s != probe.details["scores"][0] for s in probe.details["scores"])


def _twin_files(tmp_path: Path) -> Path:
    """A files-proposer directory: last_number_match, its behavioural twin, tag_partial (in that order)."""
    files = tmp_path / "rewards"
    files.mkdir()
    for i, idx in enumerate((0, 3, 2)):
        (files / f"r{i}_{POOL[idx]['name']}.py").write_text(POOL[idx]["code"])
    return files


def test_same_behaviour_with_different_code_is_rejected_as_a_duplicate(tmp_path: Path) -> None:
    files = _twin_files(tmp_path)
    search, store = _search(tmp_path / "run", proposer={"name": "files", "path": str(files)},
                            search={"candidates_per_round": 3})
    search._propose(1)
    for c in store.candidates(round=1):
        search._check(c)
    by_name = {c["entrypoint"]: c for c in store.candidates()}
    first, twin, other = by_name["last_number_match"], by_name["last_number_match_v2"], by_name["tag_partial"]
    assert first["id"] != twin["id"]  # different code ...
    assert first["state"] == "accepted" and other["state"] == "accepted"
    assert twin["state"] == "rejected" and twin["reason"].startswith(f"dedup: duplicate of {first['id']}")
    dedup = [c for c in store.checks(twin["id"]) if c["stage"] == "dedup"][0]
    assert dedup["details"]["twin"] == first["id"]


def test_a_renamed_copy_of_the_prompt_s_example_is_rejected_as_its_duplicate(tmp_path: Path) -> None:
    # measured with the served 1.5B coder: it copied the example under a new name; the copy's source differs
    # (so the proposer's source check lets it through) but it scores every probe exactly as the example does
    from rewardsearch.propose.prompt import example_source

    files = tmp_path / "rewards"
    files.mkdir()
    (files / "a_copy.py").write_text(example_source().replace("close_answer_in_solution", "my_new_reward"))
    (files / "b_other.py").write_text(POOL[2]["code"])
    search, store = _search(tmp_path / "run", proposer={"name": "files", "path": str(files)},
                            search={"candidates_per_round": 2})
    from rewardsearch.propose.llm import LLMProposer

    # the files proposer shows no prompt; give it the examples the compact/code prompts show
    search.proposer.shown_examples = LLMProposer(ProposerConfig(name="llm", prompt_style="code")).shown_examples
    search._propose(1)
    for c in store.candidates(round=1):
        search._check(c)
    by_name = {c["entrypoint"]: c for c in store.candidates()}
    copy, other = by_name["my_new_reward"], by_name[POOL[2]["name"]]
    assert copy["state"] == "rejected" and copy["reason"].startswith("dedup: duplicate of the prompt's example")
    assert other["state"] == "accepted"


def test_duplicates_are_replaced_by_asking_the_proposer_again(tmp_path: Path) -> None:
    files = _twin_files(tmp_path)
    search, store = _search(tmp_path / "run", proposer={"name": "files", "path": str(files)},
                            search={"candidates_per_round": 2, "refills": 2})
    search._propose(1)
    search._check_proposed(1)
    search._refill(1)
    states = {c["entrypoint"]: c["state"] for c in store.candidates(round=1)}
    assert states == {"last_number_match": "accepted", "last_number_match_v2": "rejected", "tag_partial": "accepted"}
    assert store.get_meta("refill_1_1") and not store.get_meta("refill_1_2")
    search._refill(1)  # as on resume: nothing is asked twice
    assert len(store.candidates()) == 3


def _evaluate_all(store: Store, r: int) -> None:
    from rewardsearch.search.ranking import trial_id_for

    for i, c in enumerate(store.candidates(round=r)):
        tid = trial_id_for(c["id"], 0)
        store.upsert_trial(TrialRecord(id=tid, kind="candidate", round=r, seed=0, rewards=[c["id"]],
                                       candidate_id=c["id"], state="done"))
        acc = 0.1 * (i + 1)
        store.add_eval(EvalRecord(trial_id=tid, split="dev", item_ids=["a"], correct=[1], flex_correct=[1],
                                  extracted=[1], accuracy=acc, flex_accuracy=acc, extraction_rate=1.0, f1=acc,
                                  ci95=(0.0, 1.0)))
        store.set_candidate_state(c["id"], "evaluated")


@pytest.mark.parametrize("mode", ["feedback", "random"])
def test_evolve_breeds_from_the_ranking_in_feedback_mode_and_draws_fresh_in_random_mode(
    tmp_path: Path, mode: str
) -> None:
    search, store = _search(tmp_path, search={"candidates_per_round": 4, "mode": mode})
    search._propose(1)
    _evaluate_all(store, 1)
    search._propose(2)
    round1 = {c["id"] for c in store.candidates(round=1)}
    round2 = store.candidates(round=2)
    assert len(round2) == 4 and not {c["id"] for c in round2} & round1
    ops = {c["meta"]["operator"] for c in round2}
    if mode == "feedback":
        assert ops <= {"mutation", "crossover"} and all(set(c["parents"]) <= round1 for c in round2)
    else:
        assert ops == {"random"} and all(not c["parents"] for c in round2)
