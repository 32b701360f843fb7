"""The offline `evolve` proposer: real source that passes the real checks, seeded, novel, bred from the ranking.

    python -m pytest tests/test_evolve.py -q
"""

from __future__ import annotations

import random

import pytest

from rewardsearch.config import ProposerConfig, SandboxConfig, TaskConfig
from rewardsearch.propose.base import HistoryEntry, ProposerNotAvailable, RoundContext, make_proposer
from rewardsearch.propose.evolve import EvolveProposer, crossover, mutate, random_genome, render
from rewardsearch.rewards.spec import RewardSpec
from rewardsearch.sandbox import check_reward, static_check
from rewardsearch.tasks import load_task
from rewardsearch.tasks.answers import ANSWER_IS, BOXED, HASHES

TASK = load_task(TaskConfig(), 0)
SAMPLES = [(p.question, p.answer) for p in TASK.split("train")[:4]]


def _ctx(round: int = 1, history=None, existing=None) -> RoundContext:
    return RoundContext(round=round, seed=0, task_card=TASK.card(), samples=TASK.split("train")[:3],
                        history=history or [], existing_ids=set(existing or ()))


def _run(spec, texts: list[str], gold: str) -> list:
    """Execute generated source in this test process: it is our own renderer's output, not a candidate's."""
    scope: dict = {}
    exec(compile(spec.source, "<evolve>", "exec"), scope)
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    return scope[spec.function_name](prompts=[None] * len(texts), completions=completions, answer=[gold] * len(texts))


def test_registry_builds_evolve_and_names_the_unknown() -> None:
    assert isinstance(make_proposer(ProposerConfig(name="evolve")), EvolveProposer)
    with pytest.raises(ProposerNotAvailable, match="proposer.name='evolv'.*did you mean 'evolve'"):
        make_proposer(ProposerConfig.model_construct(name="evolv"))


def test_round_one_is_seeded_reproducible_and_novel() -> None:
    a = EvolveProposer(ProposerConfig()).propose(_ctx(), 8)
    b = EvolveProposer(ProposerConfig()).propose(_ctx(), 8)
    assert [s.id for s in a] == [s.id for s in b]
    assert len({s.id for s in a}) == 8
    other_seed = EvolveProposer(ProposerConfig()).propose(RoundContext(1, 1, "", []), 8)
    assert [s.id for s in other_seed] != [s.id for s in a]
    # ids already in the run are never proposed again
    c = EvolveProposer(ProposerConfig()).propose(_ctx(existing=[s.id for s in a[:4]]), 8)
    assert not {s.id for s in c} & {s.id for s in a[:4]}
    assert all(s.origin == "evolve" and s.entrypoint == s.name and s.meta["genome"] for s in a)


def test_every_rendered_genome_passes_the_static_check() -> None:
    rng = random.Random(7)
    for _ in range(60):
        g = random_genome(rng)
        for child in (g, mutate(g, rng), crossover(g, random_genome(rng), rng)):
            result = static_check(render(child, "reward"), "reward")
            assert result.ok, (child, result.reason)


def test_generated_rewards_pass_the_sandbox_probes() -> None:
    specs = EvolveProposer(ProposerConfig()).propose(_ctx(), 4)
    for spec in specs:
        results = check_reward(spec, SandboxConfig(), SAMPLES)
        assert [r.ok for r in results] == [True, True], (spec.name, results[-1].reason)


def test_rendered_semantics_follow_the_genome() -> None:
    base = {"extract": "solution", "match": {"kind": "exact"}, "correct": 2.0, "wrong": -1.0, "missing": 0.0,
            "format": [], "length": None, "repetition": None, "steps": None, "spam_guard": None}
    def make(g):
        return RewardSpec(name="r", source=render(g, "r"))

    texts = ["<solution>12</solution>", "<solution>11</solution>", "the answer is 12", ""]
    assert _run(make(base), texts, "12") == [2.0, -1.0, 0.0, 0.0]
    last = {**base, "extract": "last_number"}
    assert _run(make(last), texts, "12") == [2.0, -1.0, 2.0, 0.0]
    graded = {**base, "match": {"kind": "graded", "tiers": [[0.1, 0.5], [0.25, 0.2]]}}
    assert _run(make(graded), ["<solution>11</solution>", "<solution>9</solution>"], "12") == [1.0, 0.4]
    fmt = {**base, "format": [{"kind": "tag_once", "w": 1.0}]}
    assert _run(make(fmt), ["<thinking>a</thinking><solution>12</solution>"], "12") == [3.0]
    guard = {**base, "spam_guard": {"max_numbers": 1}}
    assert _run(make(guard), ["<solution>1 2 3 12</solution>", "<solution>12</solution>"], "12") == [-1.0, 2.0]
    assert _run(make(base), ["<solution>5</solution>"], "no number") == [None]


def test_later_rounds_breed_from_the_best_ranked_parents() -> None:
    prop = EvolveProposer(ProposerConfig(parents=2, mutation_rate=0.5))
    first = prop.propose(_ctx(), 6)
    history = [
        HistoryEntry(spec=s, state="evaluated", dev_accuracy=acc, dev_extraction_rate=0.5)
        for s, acc in zip(first, [0.9, 0.8, 0.1, 0.1, 0.0, 0.0], strict=True)
    ]
    children = prop.propose(_ctx(round=2, history=history, existing=[s.id for s in first]), 6)
    top = {first[0].id, first[1].id}
    assert len(children) == 6
    assert all(c.parents and set(c.parents) <= top for c in children)
    assert {c.meta["operator"] for c in children} <= {"mutation", "crossover"}
    assert not {c.id for c in children} & {s.id for s in first}


@pytest.mark.parametrize("fmt", [BOXED, HASHES, ANSWER_IS], ids=lambda f: f.name)
def test_primitives_follow_the_tasks_answer_format(fmt) -> None:
    base = {"extract": "solution", "match": {"kind": "exact"}, "correct": 2.0, "wrong": -1.0, "missing": 0.0,
            "format": [{"kind": "tag_once", "w": 1.0}, {"kind": "layout", "w": 0.5}], "length": None,
            "repetition": None, "steps": None, "spam_guard": None}
    spec = RewardSpec(name="r", source=render(base, "r", fmt))
    right, wrong = fmt.write("12", "6 + 6 = 12"), fmt.write("11", "6 + 6 = 11")
    # answer credit from the format's own segment, its one marker once, its layout: 2 + 1 + 0.5
    assert _run(spec, [right, wrong, "<solution>12</solution>"], "12") == [3.5, -1.0 + 1.5, 0.0]
    # a thinking block means nothing without the tags: never drawn, and refused when asked for
    rng = random.Random(3)
    drawn = [random_genome(rng, fmt) for _ in range(200)]
    drawn += [mutate(g, rng, fmt) for g in drawn]
    assert not any(t["kind"] == "thinking_block" for g in drawn for t in g["format"])
    with pytest.raises(ValueError, match=f"thinking_block.*answer format '{fmt.name}'"):
        render({**base, "format": [{"kind": "thinking_block", "w": 1.0}]}, "r", fmt)


def test_the_proposer_writes_rewards_in_the_rounds_format() -> None:
    ctx = _ctx()
    ctx.answer_format = BOXED
    specs = EvolveProposer(ProposerConfig()).propose(ctx, 4)
    tags = EvolveProposer(ProposerConfig()).propose(_ctx(), 4)
    assert all("\\\\boxed{" in s.source and "<solution>" not in s.source for s in specs)
    assert not {s.id for s in specs} & {s.id for s in tags}
    for spec in specs:   # and they pass the probes written in that format
        results = check_reward(spec, SandboxConfig(), SAMPLES, fmt=BOXED)
        assert [r.ok for r in results] == [True, True], (spec.name, results[-1].reason)
