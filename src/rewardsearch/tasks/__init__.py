"""Tasks: the problems a policy is trained and judged on (`load_task` picks one by config name).

Also holds `NumericTask`, the behaviour every numeric-answer task shares (chat prompt, answer extraction,
correctness, task card layout); `arith` and `gsm8k` only supply their problems and descriptions. Those
modules are imported inside `load_task`, so importing this package stays cheap and cycle-free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rewardsearch.tasks import answers
from rewardsearch.tasks.base import SYSTEM_PROMPT, Problem, Split, Task

if TYPE_CHECKING:
    from rewardsearch.config import TaskConfig

__all__ = ["SYSTEM_PROMPT", "NumericTask", "Problem", "Split", "Task", "load_task"]


class NumericTask:
    """Base of tasks whose gold answer is one number.

    Subclasses set `name` and `version` and implement `_build` (all three splits, built once on first use)
    and `_describe` (the task-specific parts of the card).
    """

    name: str
    version: str
    _splits: dict[str, list[Problem]] | None = None

    def split(self, name: Split) -> list[Problem]:
        if name not in ("train", "dev", "test"):
            raise ValueError(f"split must be train, dev or test, got {name!r}")
        if self._splits is None:
            self._splits = self._build()
        return list(self._splits[name])

    def _build(self) -> dict[str, list[Problem]]:
        raise NotImplementedError

    def prompt(self, problem: Problem) -> list[dict[str, str]]:
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": problem.question}]

    def extract_strict(self, text: str) -> str | None:
        return answers.extract_strict(text)

    def extract_flexible(self, text: str) -> str | None:
        return answers.extract_flexible(text)

    def is_correct(self, predicted: str | None, gold: str) -> bool:
        return predicted is not None and answers.numbers_equal(predicted, gold)

    def _describe(self) -> tuple[str, str, Problem]:
        """(what the task is, the form of gold answers, an example problem) for the card."""
        raise NotImplementedError

    def card(self) -> str:
        what, gold_form, example = self._describe()
        return "\n".join(
            [
                f"Task: {self.name} (version {self.version})",
                what,
                "",
                "The model sees a system prompt asking for this format, then the question:",
                "<thinking>\n...step-by-step reasoning...\n</thinking>\n<solution>\n...the final answer...\n</solution>",
                "",
                f"Gold answers: {gold_form}",
                "",
                "Example problem:",
                example.question,
                f"Gold answer: {example.answer}",
                "A completion graded correct:",
                f"<thinking>\n...\n</thinking>\n<solution>\n{example.answer}\n</solution>",
                "",
                "What counts as correct (strict, the headline metric): the answer number inside the last "
                "<solution>...</solution> equals the gold answer numerically. The answer number is the last "
                "number there, except that a bracketed aside right after a number explains it: '18 (9 eggs at "
                "$2 each)' reads 18 and '20 apples (not 18)' reads 20; a bracket that starts a new sentence "
                "('24 in May. (72 in all)') is read as usual (72). Commas, spaces and LaTeX thousands "
                "separators, '$', '%', units and a trailing '.' are ignored; '7/2', '3.5' and '\\frac{7}{2}' "
                "are equal; an exponent after a unit ('18 m^2') is no number; number words count only "
                "where no numeral is. No solution tags, or no number inside them, counts as not answered. "
                "Flexible extraction (the same rule over the whole completion) is reported beside it as a "
                "diagnostic only.",
            ]
        )


def load_task(cfg: TaskConfig, seed: int) -> Task:
    """The task named by `cfg.name`, with splits drawn from `seed`."""
    if cfg.name == "arith":
        from rewardsearch.tasks.arith import ArithTask

        return ArithTask(cfg.arith, seed)
    if cfg.name == "gsm8k":
        from rewardsearch.tasks.gsm8k import GSM8KTask

        return GSM8KTask(cfg.data_dir, cfg.dev_pool, seed)
    raise ValueError(f"task.name={cfg.name!r}: unknown task; choose one of arith, gsm8k")
