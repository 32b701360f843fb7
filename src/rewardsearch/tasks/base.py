"""The `Task` protocol: splits, prompt format, answer format, extraction, correctness and the task card.

This is the one place the protocol is defined; docs/tasks.md walks through it with a minimal task. A task
class is found by name through `rewardsearch.tasks.registry` and built with `from_config(cfg, seed)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from rewardsearch.tasks.answers import TAGS, AnswerFormat

Split = Literal["train", "dev", "test"]

# The paper's format; kept as a name because older code and prompts refer to it.
SYSTEM_PROMPT = TAGS.instruction


@dataclass(frozen=True)
class Problem:
    id: str          # stable across runs, e.g. "arith-dev-00017" or "gsm8k-test-00042"
    question: str
    answer: str      # canonical gold answer (a number as text, e.g. "72", "-3.5", "7/2"; or any text)


class Task(Protocol):
    """What the search, the trials and `eval` need from a task.

    Shapes: `split` gives `Problem`s; `prompt` gives chat messages `[{"role", "content"}, ...]` (a system
    message asking for `answer_format`, then the question); `extract_*` take one completion's text and give
    the answer text or None (not answered); `is_correct` compares such an answer with `Problem.answer`.
    """

    name: str
    version: str     # bumped whenever prompts, splits or extraction change (provenance)
    answer_format: AnswerFormat  # how completions lay out the answer; base rewards and probes read it

    def split(self, name: Split) -> list[Problem]:
        """Problems of a split, in a fixed order; train/dev/test never share a question."""

    def prompt(self, problem: Problem) -> list[dict[str, str]]:
        """Chat messages (system + user) for one problem."""

    def extract_strict(self, text: str) -> str | None:
        """The answer inside the format's answer segment (the headline metric), or None."""

    def extract_flexible(self, text: str) -> str | None:
        """A looser reading (e.g. the last number anywhere), reported beside strict as a diagnostic."""

    def is_correct(self, predicted: str | None, gold: str) -> bool:
        """Whether an extracted answer equals the gold answer; None is never correct."""

    def card(self) -> str:
        """Plain text describing the task and the answer format, for the proposer."""
