"""Robust reading of LLM answers: every shape a model answers in, and one bad item never costs the good ones.

    python -m pytest tests/test_parse.py -q
"""

from __future__ import annotations

import json

import pytest

from rewardsearch.propose.parse import parse_answer

GOOD = {"name": "last_num", "description": "last number", "code":
        'import re\n\ndef last_num(prompts, completions, answer, **kwargs):\n'
        '    return [1.0 if re.findall(r"\\d+", c[0]["content"])[-1:] == [a] else 0.0\n'
        '            for c, a in zip(completions, answer)]\n'}
OTHER = {"name": "length_pen", "description": "short is good", "code":
         "def length_pen(prompts, completions, **kwargs):\n    return [-len(c[0]['content']) / 1000 for c in completions]\n"}
ITEMS = [GOOD, OTHER]
ARRAY = json.dumps(ITEMS)


@pytest.mark.parametrize(
    ("text", "how"),
    [
        (ARRAY, "json"),
        (json.dumps({"candidates": ITEMS}), "json"),
        (json.dumps({"whatever": ITEMS}), "json"),
        (f"Sure! Here are two rewards:\n```json\n{ARRAY}\n```\nLet me know if you need more.", "fenced json"),
        (f"I thought about it [1]. {json.dumps({'candidates': ITEMS})} Hope this helps.", "embedded json"),
        # a regex written with single backslashes inside the JSON string: invalid JSON, repaired
        (ARRAY.replace("\\\\d", "\\d"), "json"),
    ],
)
def test_answer_shapes_all_yield_both_candidates(text: str, how: str) -> None:
    res = parse_answer(text)
    assert res.how == how, res.error
    assert [c.name for c in res.candidates] == ["last_num", "length_pen"]
    assert res.candidates[0].entrypoint == "last_num" and "re.findall" in res.candidates[0].code
    assert not res.dropped


def test_an_answer_cut_at_the_token_limit_keeps_its_complete_items() -> None:
    res = parse_answer('{"candidates": [' + json.dumps(GOOD) + ", " + json.dumps(OTHER)[:60])
    assert res.how == "salvaged objects" and [c.name for c in res.candidates] == ["last_num"]
    assert "not valid JSON" in res.error


def test_python_blocks_are_taken_when_there_is_no_json() -> None:
    res = parse_answer(f"Two ideas.\n```python\n{GOOD['code']}```\nand\n```python\n{OTHER['code']}```")
    assert res.how == "python blocks" and [c.entrypoint for c in res.candidates] == ["last_num", "length_pen"]


def test_a_code_only_answer_takes_its_description_from_the_docstring() -> None:
    code = 'def near(prompts, completions, answer, **kwargs):\n    """Credit for a close number.\n\n    More."""\n' \
           "    return [0.0 for _ in completions]\n"
    res = parse_answer(f"```python\n{code}```\n```python\ndef bare(prompts, completions, **kw):\n    return []\n```")
    assert [(c.name, c.description) for c in res.candidates] == [("near", "Credit for a close number."), ("bare", "")]
    # the description is the called function's, not a helper's (the 1.5B put a copy of the example first)
    two = 'def helper(x):\n    """Not me."""\n    return x\n\n\n' + code
    (only,) = parse_answer(f"```python\n{two}```").candidates
    assert (only.entrypoint, only.description) == ("near", "Credit for a close number.")


def test_one_malformed_item_among_good_ones_keeps_the_good_ones_and_says_why() -> None:
    items = [GOOD, {"name": "no_code"}, "just a string", {"name": "answer_reward", "code": OTHER["code"].replace(
        "length_pen", "answer_reward")}, {"name": "Length Pen 2!", "code": OTHER["code"]}]
    res = parse_answer(json.dumps({"candidates": items}))
    assert [c.name for c in res.candidates] == ["last_num", "length_pen_2"]
    assert res.candidates[1].entrypoint == "length_pen"  # the function the code defines
    reasons = {d.index: d.reason for d in res.dropped}
    assert "has no 'code' string" in reasons[1]
    assert "is a str, not an object" in reasons[2]
    assert "base reward" in reasons[3]


def test_code_that_does_not_parse_is_kept_for_the_static_check_to_reject_with_a_line() -> None:
    res = parse_answer(json.dumps([{"name": "broken", "code": "def broken(prompts, completions, **kw):\n  return ["}]))
    assert [c.entrypoint for c in res.candidates] == ["broken"]


@pytest.mark.parametrize("text", ["", "   ", "I cannot help with that.", "[1, 2, 3]"])
def test_answers_without_candidates_say_so(text: str) -> None:
    res = parse_answer(text)
    assert not res.candidates
    assert res.error or res.dropped
