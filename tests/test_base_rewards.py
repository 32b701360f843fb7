"""The paper's three base rewards on hand-made completions.

Run: python -m pytest tests/test_base_rewards.py -q
"""

from __future__ import annotations

import doctest

import pytest

import rewardsearch.rewards.base as base_module
import rewardsearch.tasks.answers as answers_module
from rewardsearch.rewards.base import (
    BASE_REWARDS,
    answer_reward,
    approx_format_reward,
    completion_text,
    exact_format_reward,
)


def conv(text: str) -> list[dict[str, str]]:
    """A completion as TRL passes it for conversational datasets."""
    return [{"role": "assistant", "content": text}]


GOOD = "<thinking>\n12 + 5 = 17, 17 - 3 = 14\n</thinking>\n<solution>\n14\n</solution>"


def score(fn, texts: list[str], gold: str = "14") -> list[float | None]:
    return fn(None, [conv(t) for t in texts], [gold] * len(texts))


def test_completion_text_accepts_both_shapes() -> None:
    assert completion_text(conv("hi")) == "hi"
    assert completion_text("hi") == "hi"
    assert completion_text([]) == ""
    assert exact_format_reward(None, [GOOD, conv(GOOD)], ["14", "14"]) == [3.0, 3.0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD, 3.0),
        ("  <thinking>a</thinking><solution>14</solution>  \n", 3.0),
        ("<thinking></thinking>\n\n<solution></solution>", 3.0),  # the paper's regex does not look inside
        ("Sure! <thinking>a</thinking><solution>14</solution>", 0.0),  # text before
        ("<thinking>a</thinking><solution>14</solution> Done.", 0.0),  # text after
        ("<solution>14</solution><thinking>a</thinking>", 0.0),  # wrong order
        ("<thinking>a</thinking> 14", 0.0),
        ("14", 0.0),
        ("", 0.0),
    ],
)
def test_exact_format_reward(text: str, expected: float) -> None:
    assert score(exact_format_reward, [text]) == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD, 2.0),  # all four tags once: 4 * 0.5
        ("no tags at all", -4.0),  # all four missing: 4 * -1
        ("<solution>14</solution>", -1.0),  # two present, two missing
        ("<thinking>a</thinking><thinking>b</thinking><solution>14</solution>", -1.0),  # a repeat is -1
        ("<thinking>a<solution>14</solution>", 0.5),  # three present, one missing
        ("", -4.0),
    ],
)
def test_approx_format_reward(text: str, expected: float) -> None:
    assert score(approx_format_reward, [text]) == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD, 3.0),
        ("<solution>$1,000.</solution>", 3.0),  # gold 1000: $, comma and full stop ignored
        ("<solution>1050</solution>", 1.0),  # 5% off
        ("<solution>1100</solution>", 1.0),  # exactly 10% off
        ("<solution>900</solution>", 1.0),
        ("<solution>1150</solution>", 0.5),  # 15% off
        ("<solution>1200</solution>", 0.5),  # exactly 20% off
        ("<solution>1201</solution>", -1.5),
        ("<solution>-1000</solution>", -1.5),
        ("<solution>no idea</solution>", 0.0),  # tags but no number
        ("The answer is 1000.", 0.0),  # no tags: strict extraction finds nothing
        ("<solution>5</solution> and finally <solution>1000</solution>", 3.0),  # last solution counts
        ("", 0.0),
    ],
)
def test_answer_reward(text: str, expected: float) -> None:
    gold = "14" if text == GOOD else "1000"
    assert score(answer_reward, [text], gold) == [expected]


def test_answer_reward_fractions_and_zero_gold() -> None:
    assert answer_reward(None, ["<solution>3.5</solution>", "<solution>1</solution>"], ["7/2", "0"]) == [
        3.0,
        -1.5,
    ]
    assert answer_reward(None, ["<solution>0</solution>"], ["0"]) == [3.0]


def test_answer_reward_unjudgeable_gold_is_none() -> None:
    assert answer_reward(None, ["<solution>4</solution>"], ["n/a"]) == [None]


def test_batch_shape_and_kwargs() -> None:
    texts = [GOOD, "14", "<solution>13</solution>"]
    completions = [conv(t) for t in texts]
    for fn in BASE_REWARDS:
        out = fn(["p"] * 3, completions, ["14"] * 3, trainer_state=None, extra_column=[1, 2, 3])
        assert len(out) == 3
    assert [f.__name__ for f in BASE_REWARDS] == [
        "exact_format_reward",
        "approx_format_reward",
        "answer_reward",
    ]


def test_base_rewards_import_only_stdlib_and_answers() -> None:
    source = open(base_module.__file__, encoding="utf-8").read()
    imports = {line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))}
    assert imports <= {"__future__", "re", "collections.abc", "typing", "rewardsearch.tasks.answers"}, imports
    answers_source = open(answers_module.__file__, encoding="utf-8").read()
    answers_imports = {
        line.split()[1] for line in answers_source.splitlines() if line.startswith(("import ", "from "))
    }
    assert answers_imports <= {"__future__", "collections.abc", "difflib", "math", "re", "unicodedata", "fractions", "typing"}, answers_imports


@pytest.mark.parametrize("module", [base_module, answers_module])
def test_docstring_examples(module) -> None:
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
