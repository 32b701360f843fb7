"""The `Task` protocol: splits, prompt format, answer extraction, correctness and the task card."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

Split = Literal["train", "dev", "test"]

SYSTEM_PROMPT = (
    "Respond in the following format:\n"
    "<thinking>\n...your step-by-step reasoning...\n</thinking>\n"
    "<solution>\n...the final answer, a single number...\n</solution>"
)


@dataclass(frozen=True)
class Problem:
    id: str          # stable across runs, e.g. "arith-dev-00017" or "gsm8k-test-00042"
    question: str
    answer: str      # canonical gold answer (a number as text, e.g. "72", "-3.5", "7/2")


class Task(Protocol):
    name: str
    version: str     # bumped whenever prompts, splits or extraction change (provenance)

    def split(self, name: Split) -> list[Problem]:
        """Problems of a split, in a fixed order; train/dev/test never share a question."""

    def prompt(self, problem: Problem) -> list[dict[str, str]]:
        """Chat messages (system + user) for one problem."""

    def extract_strict(self, text: str) -> str | None:
        """The answer inside the last <solution>...</solution>, if it holds a number."""

    def extract_flexible(self, text: str) -> str | None:
        """The last number anywhere in the text."""

    def is_correct(self, predicted: str | None, gold: str) -> bool:
        """Numeric comparison, tolerant of commas, $, %, trailing '.', negatives and fractions."""

    def card(self) -> str:
        """Plain text describing the task and the answer format, for the proposer."""
