"""The `item` prompt style: the model writes a per-item `f(text, gold) -> float`, the proposer wraps it into the
batch reward, and every check sees the complete wrapped module.

    python -m pytest tests/test_item.py -q

Real components: the static check, the subprocess sandbox and its probe suite, the `llm` proposer over HTTP
against the scripted server on 127.0.0.1 (`llm_server.FakeLLM`), the search loop's proposal step with its refills
and the run store's funnel. Also here: the probes' index-dependence reason naming its fix, and a refill ask
carrying the previous ask's parse-time drops.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rewardsearch.config import ProposerConfig, SandboxConfig, TaskConfig
from rewardsearch.propose.item import wrap_item, wrap_items
from rewardsearch.propose.parse import RESERVED_NAMES, parse_answer
from rewardsearch.propose.prompt import PromptBuilder, example_source, item_example
from rewardsearch.rewards.spec import RewardSpec, reward_id
from rewardsearch.sandbox import check_reward
from rewardsearch.sandbox.probe import CONSTANT_FIX, INDEX_DEPENDENCE_FIX
from rewardsearch.sandbox.static import static_check
from rewardsearch.search.funnel import round_funnel
from rewardsearch.tasks import load_task

sys.path.insert(0, str(Path(__file__).parent))
from llm_server import FakeLLM, ok  # noqa: E402
from test_refill import _search as refill_search  # noqa: E402

TASK = load_task(TaskConfig(), 0)
SAMPLES = [(p.question, p.answer) for p in TASK.split("train")[:8]]

# What a small model writes: a module-level import, a helper, a constant, a name of its own, a call left at the
# bottom; the helper takes two arguments too, but it is called by the score function, so it is not the score.
STEPS = '''import re

OPS = re.compile(r"\\d+\\s*[-+*/]\\s*\\d+")


def count_steps(text, limit):
    return min(limit, len(OPS.findall(text[:20000])))


def shows_steps(text: str, gold: str) -> float:
    """Credit for calculation steps, and for the correct number in the solution tags."""
    blocks = re.findall(r"<solution>(.*?)</solution>", text[:20000], re.DOTALL)
    right = len(blocks) == 1 and blocks[0].strip() == gold.strip()
    return 0.1 * count_steps(text, 5) + (1.0 if right else 0.0)


print(shows_steps("<solution>3</solution> 1 + 2", "3"))
'''
# `math` used but never imported (a frequent NameError of the 0.5B): the wrapper imports it
NO_IMPORT = '''def short_and_right(text: str, gold: str) -> float:
    """Shorter answers score higher; the correct number in the tags doubles the score."""
    right = ("<solution>" + gold.strip() + "</solution>") in text
    return math.exp(-len(text) / 2000.0) * (2.0 if right else 1.0)
'''


def _checks(code: str, entry: str):
    spec = RewardSpec(name=entry, source=code, entrypoint=entry)
    return check_reward(spec, SandboxConfig(allow_weak=True), SAMPLES, fmt=TASK.answer_format)


def _ideas(fmt: str) -> list[str]:
    """`templates/item/ideas.txt` in the words of one answer format."""
    from rewardsearch.propose.prompt import item_words
    from rewardsearch.tasks.answers import answer_format

    text = example_source("item", "ideas.txt")
    for key, words in item_words(answer_format(fmt)).items():
        text = text.replace("{" + key + "}", words)
    return [x.strip() for x in text.splitlines() if x.strip()]


def _item_cfg(**kw) -> ProposerConfig:
    return ProposerConfig(prompt_style="item", **kw)


# --- the prompt and its example --------------------------------------------------------------------------------


def test_the_item_example_wrapped_passes_every_check_the_candidates_face() -> None:
    """The per-item example, as the run sees it (wrapped), is a valid, non-constant, unflagged reward."""
    source, entry = PromptBuilder(_item_cfg()).shown_candidate()
    assert source.startswith(item_example().strip())  # the model's code comes first, line for line
    assert TASK.answer_format.segment_source.rstrip() in source  # then the helper it calls, supplied
    assert f"def {entry}(prompts, completions, answer, **kwargs):" in source
    assert "for completion, gold in zip(completions, answer):" in source
    results = _checks(source, entry)
    assert [r.stage for r in results] == ["static", "probe"]
    assert all(r.ok for r in results), [r.reason for r in results]
    assert not results[-1].flags


@pytest.mark.parametrize("fmt", ["tags", "hashes", "answer_is", "boxed"])
def test_the_item_prompt_speaks_the_task_s_answer_format_and_its_example_passes_there(fmt: str) -> None:
    """A task answered `#### N` is shown an example reading the `####` line, not `<solution>` tags that none of
    its answers (nor the probes, written in its format) contain; that example passes every check in its format."""
    from rewardsearch.propose.base import RoundContext
    from rewardsearch.propose.prompt import item_words
    from rewardsearch.tasks.answers import answer_format

    f = answer_format(fmt)
    builder = PromptBuilder(_item_cfg())
    ctx = RoundContext(round=1, seed=0, task_card=TASK.card(), samples=TASK.split("train")[:3], answer_format=f)
    system, user = (m["content"] for m in builder.build(ctx, 8).messages)
    assert item_example(f).strip() in system
    assert ("<solution>" in system) == (fmt == "tags") and "{" + "in_answer}" not in system + user
    words = item_words(f)
    assert f"penalizes {words['outside']}" in user and words["answer_part"] in system
    source, entry = builder.shown_candidate(f)
    assert reward_id(source) in builder.shown_ids  # a copy of any format's example is a copy
    results = check_reward(RewardSpec(name=entry, source=source, entrypoint=entry), SandboxConfig(allow_weak=True),
                           SAMPLES, fmt=f)
    assert all(r.ok for r in results), [r.reason for r in results]
    assert not results[-1].flags
    if fmt in ("tags", "hashes"):  # in the other one, the same example reads nothing: the mismatch this avoids
        other = answer_format("hashes" if fmt == "tags" else "tags")
        probe = check_reward(RewardSpec(name=entry, source=source, entrypoint=entry),
                             SandboxConfig(allow_weak=True), SAMPLES, fmt=other)[-1]
        assert not probe.ok and probe.reason.startswith("constant reward")


def test_the_item_prompt_asks_for_a_per_item_function_in_python_blocks() -> None:
    from rewardsearch.propose.base import RoundContext

    ctx = RoundContext(round=1, seed=0, task_card=TASK.card(), samples=TASK.split("train")[:3])
    notes = ["your previous candidate x was rejected: probe: boom; fix it"]
    system, user = (m["content"] for m in PromptBuilder(_item_cfg()).build(ctx, 2, notes=notes).messages)
    assert "def <name>(text: str, gold: str) -> float:" in system
    assert "def close_answer(text: str, gold: str) -> float:" in system  # the example, per item
    assert "completions" not in system and "JSON" not in system  # no batch contract to get wrong
    assert all(name in system for name in RESERVED_NAMES)  # the base rewards, by name only
    assert "- your previous candidate x was rejected: probe: boom; fix it" in user
    asked = user.split("Write 2 new, different scoring functions, each in its own ```python block:\n", 1)[1]
    ideas = [line.split(". one that ", 1)[1] for line in asked.strip().splitlines()]
    assert len(ideas) == 2 and ideas[0] != ideas[1]
    assert all(idea in _ideas("tags") for idea in ideas)
    # a refill ask of the round, and the next round, ask for other ideas
    refill = PromptBuilder(_item_cfg()).build(RoundContext(**{**ctx.__dict__, "refill": "refill_1_1"}), 2)
    assert not any(idea in refill.messages[1]["content"] for idea in ideas)


def test_the_item_style_answers_code_and_refuses_a_json_mode() -> None:
    assert _item_cfg().resolved_json_mode() == "off"
    with pytest.raises(ValueError, match="json_mode=grammar forces a JSON answer, but prompt_style=item"):
        ProposerConfig(prompt_style="item", json_mode="grammar")


# --- parsing and wrapping -----------------------------------------------------------------------------------------


def test_a_per_item_answer_becomes_a_self_contained_batch_reward_that_passes_the_checks() -> None:
    res = parse_answer(f"Here it is:\n```python\n{STEPS}```\n```python\n{NO_IMPORT}```", item=True)
    assert res.how == "python blocks" and not res.dropped
    steps, short = res.candidates
    assert (steps.name, steps.entrypoint) == ("shows_steps_reward", "shows_steps_reward")
    assert steps.description == "Credit for calculation steps, and for the correct number in the solution tags."
    assert "float(shows_steps(str(text), str(gold)))" in steps.code  # the score function, not its helper
    assert "print(" not in steps.code  # import-time-only statements are removed ...
    assert steps.code.splitlines()[:13] == STEPS.splitlines()[:13]  # ... and the model's lines keep their numbers
    assert "\nimport math\n" in short.code and short.entrypoint == "short_and_right_reward"
    for c in (steps, short):
        results = _checks(c.code, c.entrypoint)
        assert all(r.ok for r in results), (c.name, [r.reason for r in results])


def _answer_line_format():
    """A task plugin's own answer format ("Answer: N"), not one of the built-in ones."""
    from rewardsearch.tasks.answers import AnswerFormat

    source = ("def _solution(text):\n"
              "    lines = [ln for ln in text.splitlines() if ln.startswith('Answer:')]\n"
              "    return (lines[-1][len('Answer:'):].strip() or None) if lines else None\n")
    scope: dict = {}
    exec(source, scope)
    return AnswerFormat(name="answer_line", instruction="Reason, then end with a line 'Answer: N'.",
                        layout=r".*\nAnswer: [^\n]+\s*", markers=("Answer:",), segment=scope["_solution"],
                        segment_source=source, template="{reasoning}\nAnswer: {answer}",
                        answer_part="the 'Answer:' line")


@pytest.mark.parametrize("fmt", ["tags", "hashes", "answer_line"])
def test_a_score_function_calling_the_format_s_solution_helper_gets_it_supplied(fmt: str) -> None:
    """`_solution(text)` is the format's own answer-part function (`segment_source`): a score function that calls
    it without defining it gets it, after the model's code; one that defines its own keeps its own."""
    from rewardsearch.propose.item import helpers
    from rewardsearch.tasks.answers import answer_format

    f = _answer_line_format() if fmt == "answer_line" else answer_format(fmt)
    code = ("def right_number(text: str, gold: str) -> float:\n"
            "    \"\"\"The correct number in the answer part.\"\"\"\n"
            "    part = _solution(text)\n"
            "    return 1.0 if part is not None and part.strip() == gold.strip() else 0.0\n")
    (c,) = parse_answer(f"```python\n{code}```", item=True, provided=helpers(f)).candidates
    assert c.code.startswith(code) and f.segment_source.rstrip() in c.code
    results = check_reward(RewardSpec(name=c.entrypoint, source=c.code, entrypoint=c.entrypoint),
                           SandboxConfig(allow_weak=True), SAMPLES, fmt=f)
    assert all(r.ok for r in results), [r.reason for r in results]
    assert "golden_pair:wrong" not in results[-1].flags  # it reads this format's answer: right beats wrong
    own = "def _solution(text):\n    return text\n\n\n" + code
    (c,) = parse_answer(f"```python\n{own}```", item=True, provided=helpers(f)).candidates
    assert c.code.count("def _solution(") == 1
    # without the helper supplied (not the item proposer), the call is a NameError the probes reject
    (c,) = parse_answer(f"```python\n{code}```", item=True).candidates
    probe = _checks(c.code, c.entrypoint)[-1]
    assert not probe.ok and "NameError" in probe.reason


def test_a_task_plugin_s_answer_format_gets_an_item_prompt_in_its_own_words() -> None:
    from rewardsearch.propose.base import RoundContext
    from rewardsearch.propose.item import helpers

    f = _answer_line_format()
    builder = PromptBuilder(_item_cfg())
    ctx = RoundContext(round=1, seed=0, task_card=f.instruction, samples=TASK.split("train")[:3], answer_format=f)
    system, user = (m["content"] for m in builder.build(ctx, 8).messages)
    assert "_solution(text)" in system and "the 'Answer:' line" in system + user
    assert "<solution>" not in system + user and "####" not in system + user
    source, entry = builder.shown_candidate(f)
    results = check_reward(RewardSpec(name=entry, source=source, entrypoint=entry), SandboxConfig(allow_weak=True),
                           SAMPLES, fmt=f)
    assert all(r.ok for r in results), [r.reason for r in results]
    assert not results[-1].flags
    # a verbatim copy of this format's example is a copy too, though the format is not a built-in one
    assert reward_id(source) not in builder.shown_ids and builder.is_example(reward_id(source), f)
    (copy,) = parse_answer(f"```python\n{item_example(f)}```", item=True, provided=helpers(f)).candidates
    assert builder.is_example(reward_id(copy.code), f) and not builder.is_example(reward_id(copy.code))


def test_the_wrapper_catches_nothing_a_broken_score_function_is_rejected() -> None:
    # an unchecked blocks[0]: IndexError on an answer without tags, as in a batch reward
    broken = ('def first_block(text, gold):\n    import re\n'
              '    block = re.findall(r"<solution>(.*?)</solution>", text)[0]\n'
              '    return 1.0 if block.strip() == gold.strip() else 0.0\n')
    (c,) = parse_answer(f"```python\n{broken}```", item=True).candidates
    probe = _checks(c.code, c.entrypoint)[-1]
    assert not probe.ok and "IndexError" in probe.reason
    # a score that is None fails float() in the wrapper: a failed call, not a silent 0 (and the reason says why)
    (c,) = parse_answer("```python\ndef nothing(text, gold):\n    return None\n```", item=True).candidates
    probe = _checks(c.code, c.entrypoint)[-1]
    assert not probe.ok and "TypeError" in probe.reason
    assert probe.reason.endswith("a function that ends without `return` returns None")


def test_code_that_does_not_parse_is_rejected_by_the_static_check_at_the_model_s_line() -> None:
    code = "def half(text, gold):\n    x = (1 +\n    return x\n"
    (c,) = parse_answer(f"```python\n{code}```", item=True).candidates
    assert c.code.startswith(code) and c.entrypoint == "half_reward"
    result = static_check(c.code, c.entrypoint)
    assert not result.ok and result.rule == "syntax"
    assert result.reason == static_check(code, "half").reason == "line 2: syntax error: '(' was never closed"


def test_what_cannot_be_a_score_function_is_dropped_with_a_reason() -> None:
    answer = ("```python\ndef no_args():\n    return 1.0\n\n\ndef three(text, gold, limit):\n    return 1.0\n```\n"
              "```python\ndef answer_reward(text, gold):\n    return 1.0\n```\n"
              "```python\ndef only_text(text: str) -> str:\n    return text.strip()\n```\n")
    res = parse_answer(answer, item=True)
    assert not res.candidates
    assert res.dropped[0].reason == ("item 0: no score function `def <name>(text: str, gold: str) -> float` or "
                                     "`def <name>(text: str) -> float` (the code defines no_args(), "
                                     "three(text, gold, limit))")
    assert "is a base reward's" in res.dropped[1].reason
    assert res.dropped[2].reason.endswith("(the code defines only_text(text) -> str)")  # a helper, no score
    # a wrapper name is never a base reward's: `answer` would wrap as `answer_reward`
    wrapped = wrap_item("def answer(text, gold):\n    return 1.0\n", avoid=RESERVED_NAMES)
    assert wrapped.entrypoint == "answer_batch"


# A function of the text alone (the ideas that need no correct answer; 8 of 16 items of a smoke search were this)
ONE_NUMBER = '''def one_number_in_tags(text: str) -> float:
    """Credit for exactly one number inside one pair of solution tags."""
    import re

    blocks = re.findall(r"<solution>(.*?)</solution>", text[:20000], re.DOTALL)
    if len(blocks) != 1:
        return 0.0
    return 1.0 if len(re.findall(r"-?\\d+(?:\\.\\d+)?", blocks[0])) == 1 else 0.25
'''


def test_a_one_argument_score_function_is_called_without_gold_and_judged_by_the_probes() -> None:
    (c,) = parse_answer(f"```python\n{ONE_NUMBER}```", item=True).candidates
    assert (c.name, c.entrypoint) == ("one_number_in_tags_reward", "one_number_in_tags_reward")
    assert c.description == "Credit for exactly one number inside one pair of solution tags."
    assert c.code.startswith(ONE_NUMBER)  # the model's code first, line for line
    assert "    for completion in completions:\n" in c.code and "float(one_number_in_tags(str(text)))" in c.code
    assert wrap_item(ONE_NUMBER).gold is False
    results = _checks(c.code, c.entrypoint)
    assert [r.stage for r in results] == ["static", "probe"]
    assert all(r.ok for r in results), [r.reason for r in results]
    # it cannot tell a right answer from a wrong one: the probes pass it, and flag exactly that
    assert "golden_pair:wrong" in results[-1].flags
    # a function of the text that scores every answer alike is rejected as any constant reward, and told why
    (flat,) = parse_answer("```python\ndef flat(text):\n    return -10.0 if len(text) > 10**9 else 0.5\n```",
                           item=True).candidates
    probe = _checks(flat.code, flat.entrypoint)[-1]
    assert not probe.ok and probe.reason == f"constant reward gives GRPO no signal (0.5 on every probe); {CONSTANT_FIX}"
    # a one-argument function that raises is not rescued: nothing in the wrapper catches
    (bad,) = parse_answer("```python\ndef ratio(text):\n    return 1.0 / (len(text) - len(text))\n```",
                          item=True).candidates
    probe = _checks(bad.code, bad.entrypoint)[-1]
    assert not probe.ok and "ZeroDivisionError" in probe.reason
    assert probe.reason.endswith("; check that a divisor is not zero before dividing")
    # and the usual fixes of the other common failures
    unguarded = "def tagged(text):\n    import re\n\n    return float(re.search(r'<solution>(\\d+)', text).group(1))\n"
    (group,) = parse_answer(f"```python\n{unguarded}```", item=True).candidates
    probe = _checks(group.code, group.entrypoint)[-1]
    assert not probe.ok and "'NoneType' object has no attribute 'group'" in probe.reason
    assert probe.reason.endswith("check the match is not None before using it (`.group()`, `.end()`)")
    (big,) = parse_answer("```python\ndef long(text):\n    return -float(len(text))\n```", item=True).candidates
    probe = _checks(big.code, big.entrypoint)[-1]
    assert not probe.ok and probe.reason.endswith("clamp it, `max(-bound, min(bound, score))`"), probe.reason


# One block, three score functions nobody calls (two taking gold, one of the text alone), sharing an import, a
# constant and a helper; a helper annotated `-> str` is no score function; a call left at the bottom.
SEVERAL = '''import re

NUMBER = re.compile(r"-?\\d+(?:\\.\\d+)?")


def last_number(text):
    found = NUMBER.findall(text[:20000])
    return found[-1] if found else ""


def cleaned(text: str) -> str:
    return text.strip()


def right_anywhere(text: str, gold: str) -> float:
    """Credit when the last number of the answer is the correct one."""
    return 1.0 if last_number(text) == gold.strip() else 0.0


def few_numbers(text: str) -> float:
    """Fewer numbers written score higher."""
    return 1.0 / (1.0 + len(NUMBER.findall(text[:20000])))


def right_in_tags(text: str, gold: str) -> float:
    """Credit for the correct number in the solution tags."""
    blocks = re.findall(r"<solution>(.*?)</solution>", text[:20000], re.DOTALL)
    return 1.0 if len(blocks) == 1 and last_number(blocks[0]) == gold.strip() else 0.0


print(right_in_tags("<solution>3</solution>", "3"))
'''


def test_one_candidate_per_root_function_each_with_the_shared_code() -> None:
    wrapped = wrap_items(SEVERAL, avoid=RESERVED_NAMES)
    # the main one first (the last taking gold, as a single candidate was before), then the others in order
    assert [(w.function, w.gold) for w in wrapped] == [
        ("right_in_tags", True), ("right_anywhere", True), ("few_numbers", False)]
    model = SEVERAL.splitlines()
    spans = {"right_anywhere": (15, 18), "few_numbers": (20, 22), "right_in_tags": (25, 29)}  # 1-based, inclusive
    for w in wrapped:
        lines = w.code.splitlines()
        assert lines[:13] == model[:13]  # the import, the constant and both helpers, kept with each
        a, b = spans[w.function]
        assert lines[a - 1 : b] == model[a - 1 : b]  # its own lines where the model wrote them
        assert [f for f in spans if f"def {f}(" in w.code] == [w.function]  # the other score functions blanked
        assert "print(" not in w.code and w.code.count("(prompts, completions, answer, **kwargs)") == 1
        results = _checks(w.code, w.entrypoint)
        assert all(r.ok for r in results), (w.function, [r.reason for r in results])
    # two answers' blocks: each item's main function comes before any item's further ones
    res = parse_answer(f"```python\n{SEVERAL}```\n```python\n{NO_IMPORT}```", item=True)
    assert [(c.entrypoint, c.index) for c in res.candidates] == [
        ("right_in_tags_reward", 0), ("short_and_right_reward", 1), ("right_anywhere_reward", 0),
        ("few_numbers_reward", 0)]
    assert not res.dropped


def test_a_function_another_uses_is_a_helper_not_a_score_and_a_named_item_keeps_its_main() -> None:
    code = ("def base(text, gold):\n    return 1.0 if gold in text else 0.0\n\n\n"
            "SCORERS = [base]\n\n\n"
            "def total(text, gold):\n    return sum(f(text, gold) for f in SCORERS) + len(text) / 1e5\n")
    assert [w.function for w in wrap_items(code)] == ["total"]  # `base` is used at module level
    # a JSON item's own name picks the main function; the other root still becomes a candidate
    named = wrap_items("def a(text, gold):\n    return 1.0\n\n\ndef b(text):\n    return 2.0\n", name="b")
    assert [(w.function, w.gold) for w in named] == [("b", False), ("a", True)]


def test_several_root_functions_give_candidates_only_up_to_the_number_asked(tmp_path: Path) -> None:
    with FakeLLM([ok(f"```python\n{SEVERAL}```")]) as llm:
        search, store = _search(tmp_path, llm.url, refills=0)  # one candidate a round
        search.propose_and_check(1)
    (cand,) = store.candidates(round=1)
    assert cand["name"] == "right_in_tags_reward" and cand["state"] == "accepted"
    (call,) = store.proposer_calls(status="ok")
    assert [d["name"] for d in call["dropped"]] == ["right_anywhere_reward", "few_numbers_reward"]
    assert all(d["reason"] == "beyond the 1 candidates still wanted this round" for d in call["dropped"])
    (row,) = round_funnel(store)
    assert (row["proposed"], row["parsed"], row["candidates"], row["passed_probes"]) == (3, 3, 1, 1)


def test_a_constant_score_s_refill_note_names_the_fix() -> None:
    from rewardsearch.search.loop import rejection_note

    (c,) = parse_answer("```python\ndef tagged(text, gold):\n    return 1.0 if '<answer>' in text else 0.0\n```",
                        item=True).candidates
    probe = _checks(c.code, c.entrypoint)[-1]
    assert not probe.ok and probe.reason.endswith(CONSTANT_FIX)
    note = rejection_note({"name": c.name, "reason": f"probe: {probe.reason}"})
    assert "a correct answer must score higher than a wrong one" in note and note.endswith("; fix it")


def test_an_answer_in_the_batch_contract_is_taken_as_written() -> None:
    batch = example_source()  # the compact example: a batch reward
    (c,) = parse_answer(f"```python\n{batch}```", item=True).candidates
    assert c.code == batch and c.entrypoint == "close_answer_in_solution"


# --- through the proposer and the loop -----------------------------------------------------------------------------


def _search(run_dir: Path, url: str, refills: int, style: str = "item"):
    return refill_search(run_dir, url, refills, prompt_style=style, max_calls_per_round=1)


def test_a_copy_of_the_example_is_dropped_and_the_refill_ask_says_so(tmp_path: Path) -> None:
    copy = f"```python\n{item_example()}```"
    with FakeLLM([ok(copy), ok(f"```python\n{NO_IMPORT}```")]) as llm:
        search, store = _search(tmp_path, llm.url, refills=2)
        search.propose_and_check(1)
        prompts = llm.prompts()
    assert len(prompts) == 2
    note = "item 0 was a copy of the prompt's example (the same code); write a new reward, not the example"
    assert note not in prompts[0] and f"- {note}" in prompts[1]
    (cand,) = store.candidates(round=1)
    assert cand["state"] == "accepted" and cand["name"] == "short_and_right_reward"
    assert cand["source"].startswith(NO_IMPORT)  # the stored source is the whole wrapped module
    assert "def short_and_right_reward(prompts, completions, answer, **kwargs):" in cand["source"]
    (row,) = round_funnel(store)
    assert (row["proposed"], row["candidates"], row["passed_probes"], row["refills"]) == (2, 1, 1, 1)


def test_a_refill_after_an_unreadable_answer_carries_why(tmp_path: Path) -> None:
    # code style: the first answer holds no code at all, so nothing was rejected, yet the refill says why
    with FakeLLM([ok("I would reward the correct answer."), ok(f"```python\n{example_source()}```")]) as llm:
        search, store = _search(tmp_path, llm.url, refills=1, style="code")
        search.propose_and_check(1)
        prompts = llm.prompts()
    assert len(prompts) == 2 and "Problems with your previous answer" not in prompts[0]
    assert "- no candidates found: the answer is not JSON" in prompts[1]
    calls = store.proposer_calls(status="ok")
    assert calls[0]["meta"]["answer_notes"][0].startswith("no candidates found")
    # a code answer read as python blocks is what the style asked for: no note about JSON
    assert calls[1]["meta"]["answer_notes"] == ["item 0 was a copy of the prompt's example (the same code); "
                                                "write a new reward, not the example"]


def test_an_index_dependence_rejection_names_the_fix_and_the_refill_note_keeps_it() -> None:
    from rewardsearch.search.loop import rejection_note

    first_answer = '''import re


def matches_first_answer(prompts, completions, answer, **kwargs):
    scores = []
    for completion in completions:
        text = completion[-1]["content"] if not isinstance(completion, str) else completion
        blocks = re.findall(r"<solution>(.*?)</solution>", text)
        scores.append(1.0 if len(blocks) == 1 and blocks[0].strip() == str(answer[0]).strip() else 0.0)
    return scores
'''
    probe = _checks(first_answer, "matches_first_answer")[-1]
    assert not probe.ok and probe.reason.startswith("index dependence")
    assert probe.reason.endswith(INDEX_DEPENDENCE_FIX)
    note = rejection_note({"name": "matches_first_answer", "reason": f"probe: {probe.reason}"})
    assert "`for completion, gold in zip(completions, answer):`" in note and note.endswith("; fix it")


def test_a_renamed_copy_of_the_example_is_rejected_as_a_behavioural_duplicate(tmp_path: Path) -> None:
    renamed = item_example().replace("def close_answer(", "def near_answer(")
    with FakeLLM([ok(f"```python\n{renamed}```")]) as llm:
        search, store = _search(tmp_path, llm.url, refills=0)
        search.propose_and_check(1)
    (cand,) = store.candidates(round=1)
    assert cand["name"] == "near_answer_reward" and cand["state"] == "rejected"
    assert cand["reason"].startswith("dedup: duplicate of the prompt's example: same scores on all")
