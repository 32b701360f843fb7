"""The three base rewards of the published reference (arXiv 2605.02073), as TRL reward functions.

Each has TRL's shape, `fn(prompts, completions, answer, **kwargs) -> list[float | None]`, where
`completions[i]` is `[{"role": "assistant", "content": str}]` (a plain string is accepted too) and
`answer[i]` is the gold answer text. They use only the standard library and `rewardsearch.tasks.answers`,
so their source can be exported next to that file and run unchanged in other trainers.

Scores: `exact_format_reward` in {0, 3}; `approx_format_reward` in [-4, 2]; `answer_reward` in
{-1.5, 0, 0.5, 1, 3}, or None where the gold answer holds no number (no opinion rather than a made-up score).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rewardsearch.tasks.answers import (
    TAGS,
    AnswerFormat,
    extract_strict,
    numbers_equal,
    parse_number,
    relative_error,
)


def completion_text(completion: Any) -> str:
    """The text of one completion: a string as is, a message as its content, a conversation as its last content."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        content = completion.get("content") or ""
        if isinstance(content, list):  # multimodal content parts: [{"type": "text", "text": ...}, ...]
            return "".join(str(p.get("text") or "") for p in content if isinstance(p, Mapping))
        return str(content)
    if isinstance(completion, Sequence) and completion:
        return completion_text(completion[-1])
    return ""


def exact_format_reward(
    prompts: list[Any], completions: list[Any], answer: list[str], **kwargs: Any
) -> list[float]:
    """3.0 when the whole completion is `<thinking>...</thinking>` then `<solution>...</solution>`, else 0.0.

    Whitespace around and between the two blocks is allowed; nothing else is.

    >>> exact_format_reward(None, ["<thinking>5+3</thinking>\\n<solution>8</solution>", "8"], ["8", "8"])
    [3.0, 0.0]
    """
    return _exact_format(TAGS, completions)


def _exact_format(fmt: AnswerFormat, completions: list[Any]) -> list[float]:
    return [3.0 if fmt.is_exact(completion_text(c)) else 0.0 for c in completions]


def approx_format_reward(
    prompts: list[Any], completions: list[Any], answer: list[str], **kwargs: Any
) -> list[float]:
    """Per tag (`<thinking>`, `</thinking>`, `<solution>`, `</solution>`): +0.5 if it occurs exactly once, else -1.0.

    >>> approx_format_reward(None, ["<thinking>x</thinking><solution>1</solution>", "<solution>1</solution>"], ["1", "1"])
    [2.0, -1.0]
    """
    return _approx_format(TAGS, completions)


def _approx_format(fmt: AnswerFormat, completions: list[Any]) -> list[float]:
    # Scaled so every format spans the tags' range, [-4, 2], whatever its number of markers.
    scale = 4 / len(fmt.markers)
    scores = []
    for c in completions:
        text = completion_text(c)
        scores.append(scale * sum(0.5 if text.count(m) == 1 else -1.0 for m in fmt.markers))
    return scores


def answer_reward(
    prompts: list[Any], completions: list[Any], answer: list[str], **kwargs: Any
) -> list[float | None]:
    """Grades the number in the last `<solution>` block against the gold answer.

    No number in solution tags: 0.0; equal: 3.0; within 10% relative error: 1.0; within 20%: 0.5;
    otherwise -1.5. None where the gold answer itself holds no number.

    >>> answer_reward(None, ["<solution>72</solution>", "<solution>66</solution>", "<solution>60</solution>",
    ...                      "<solution>1</solution>", "72"], ["72"] * 5)
    [3.0, 1.0, 0.5, -1.5, 0.0]
    """
    return _answer(TAGS, completions, answer)


def _answer(fmt: AnswerFormat, completions: list[Any], answer: list[str]) -> list[float | None]:
    scores: list[float | None] = []
    for c, gold in zip(completions, answer, strict=True):
        if parse_number(gold) is None:
            scores.append(None)  # the gold answer holds no number: nothing to compare with
            continue
        predicted = extract_strict(completion_text(c), fmt)
        if predicted is None:
            scores.append(0.0)
            continue
        # None: a number too long to read (answers.MAX_DIGITS), which equals no gold answer
        error = relative_error(predicted, gold)
        if numbers_equal(predicted, gold):
            scores.append(3.0)
        elif error is not None and error <= 0.10:
            scores.append(1.0)
        elif error is not None and error <= 0.20:
            scores.append(0.5)
        else:
            scores.append(-1.5)
    return scores


RewardFn = Callable[..., list[float | None]]
_PAPER_REWARDS: list[RewardFn] = [exact_format_reward, approx_format_reward, answer_reward]


def base_rewards(fmt: AnswerFormat = TAGS) -> list[RewardFn]:
    """The three base rewards for answer format `fmt`, under the same names (TRL logs `rewards/{name}/mean`).

    For the tags format these are the module's own functions; for another format the "tags" in the
    docstrings above are that format's markers and its answer segment.
    """
    if fmt is TAGS:
        return list(_PAPER_REWARDS)

    # Same names as the module's functions (they shadow them here): TRL logs rewards by __name__.
    def exact_format_reward(prompts: list[Any], completions: list[Any], answer: list[str], **kw: Any) -> list[float]:
        return _exact_format(fmt, completions)

    def approx_format_reward(prompts: list[Any], completions: list[Any], answer: list[str], **kw: Any) -> list[float]:
        return _approx_format(fmt, completions)

    def answer_reward(prompts: list[Any], completions: list[Any], answer: list[str], **kw: Any) -> list[float | None]:
        return _answer(fmt, completions, answer)

    return [exact_format_reward, approx_format_reward, answer_reward]


BASE_REWARDS: list[RewardFn] = base_rewards(TAGS)
