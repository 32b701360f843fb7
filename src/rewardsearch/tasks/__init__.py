"""Tasks: the problems a policy is trained and judged on (`load_task` picks one by config name).

Also holds `NumericTask`, the behaviour the built-in tasks share (chat prompt in the task's answer format,
answer extraction, a correctness check, task card layout); `arith`, `gsm8k`, `file` and `hf` supply their
problems and descriptions. Task classes are found through `registry` and imported only when asked for, so
importing this package stays cheap and cycle-free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

from rewardsearch.tasks import answers
from rewardsearch.tasks.answers import TAGS, AnswerFormat
from rewardsearch.tasks.base import SYSTEM_PROMPT, Problem, Split, Task

if TYPE_CHECKING:
    from rewardsearch.config import TaskConfig

__all__ = ["SYSTEM_PROMPT", "NumericTask", "Problem", "Split", "Task", "load_task"]


class NumericTask:
    """Base of tasks whose gold answer is one number.

    Subclasses set `name` and `version` and implement `_build` (all three splits, built once on first use)
    and `_describe` (the task-specific parts of the card). The default constructor keeps the task's config
    section and seed as `self.cfg` and `self.seed`, and `from_config` builds the task and applies
    `task.answer_format` / `task.check`; a subclass whose constructor takes other arguments overrides
    `from_config` too (as `ArithTask` and `GSM8KTask` do).
    """

    name: str
    version: str
    answer_format: AnswerFormat = TAGS
    check: str = "numeric"
    _splits: dict[str, list[Problem]] | None = None

    def __init__(self, cfg: TaskConfig, seed: int) -> None:
        self.cfg = cfg
        self.seed = seed
        self._splits = None

    @classmethod
    def from_config(cls, cfg: TaskConfig, seed: int) -> Self:
        """What the registry calls: `cls(cfg, seed)`, then the config's answer format and check applied."""
        task = cls(cfg, seed)
        task.configure(cfg)
        return task

    def configure(self, cfg: TaskConfig) -> None:
        """Take the answer format and the check from config where it names them (else the class's own)."""
        from rewardsearch.tasks.checks import get_check

        if cfg.answer_format is not None:
            self.answer_format = answers.answer_format(cfg.answer_format)
        if cfg.check is not None:
            get_check(cfg.check)
            self.check = cfg.check

    def split(self, name: Split) -> list[Problem]:
        if name not in ("train", "dev", "test"):
            raise ValueError(f"split must be train, dev or test, got {name!r}")
        if self._splits is None:
            self._splits = self._build()
        return list(self._splits[name])

    def _build(self) -> dict[str, list[Problem]]:
        raise NotImplementedError

    def prompt(self, problem: Problem) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": self.answer_format.instruction},
            {"role": "user", "content": problem.question},
        ]

    def extract_strict(self, text: str) -> str | None:
        if self.check == "numeric":
            return answers.extract_strict(text, self.answer_format)
        return self.answer_format.segment(text) or None  # exact / math-verify judge the whole answer text

    def extract_flexible(self, text: str) -> str | None:
        if self.check == "numeric":
            return answers.extract_flexible(text)
        strict = self.extract_strict(text)
        if strict is not None:
            return strict
        lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
        return lines[-1] if lines else None  # no answer segment: the last line is the best guess

    def is_correct(self, predicted: str | None, gold: str) -> bool:
        from rewardsearch.tasks.checks import get_check

        return predicted is not None and get_check(self.check)(predicted, gold)

    def _describe(self) -> tuple[str, str, Problem]:
        """(what the task is, the form of gold answers, an example problem) for the card."""
        raise NotImplementedError

    def card(self) -> str:
        what, gold_form, example = self._describe()
        fmt = self.answer_format
        if self.check == "numeric":
            rule = (
                "What counts as correct (strict, the headline metric): the answer number inside the answer "
                f"segment of the {fmt.name!r} format equals the gold answer numerically. The answer number is the "
                "last number there, except that a bracketed aside right after a number explains it: '18 (9 eggs "
                "at $2 each)' reads 18 and '20 apples (not 18)' reads 20; a bracket that starts a new sentence "
                "('24 in May. (72 in all)') is read as usual (72). Commas, spaces and LaTeX thousands "
                "separators, '$', '%', units and a trailing '.' are ignored; '7/2', '3.5' and '\\frac{7}{2}' "
                "are equal; an exponent after a unit ('18 m^2') is no number; number words count only "
                "where no numeral is. No answer segment, or no number inside it, counts as not answered. "
                "Flexible extraction (the same rule over the whole completion) is reported beside it as a "
                "diagnostic only."
            )
        else:
            rule = (
                f"What counts as correct (strict, the headline metric): the text of the answer segment of the "
                f"{fmt.name!r} format, judged by the {self.check!r} check against the gold answer. No answer "
                "segment counts as not answered."
            )
            if self.check == "math-verify":
                rule += (
                    " Where the gold answer is one number, an answer holding more than one number right of its "
                    "last '=' (an unevaluated computation such as '9 * 8') is not correct."
                )
        return "\n".join(
            [
                f"Task: {self.name} (version {self.version})",
                what,
                "",
                f"The model sees a system prompt asking for the {fmt.name!r} answer format, then the question:",
                fmt.instruction,
                "",
                f"Gold answers: {gold_form}",
                "",
                "Example problem:",
                example.question,
                f"Gold answer: {example.answer}",
                "A completion graded correct:",
                fmt.write(example.answer, "..."),
                "",
                rule,
            ]
        )


def load_task(cfg: TaskConfig, seed: int) -> Task:
    """The task named by `cfg.name` (see `registry`), with splits drawn from `seed`."""
    from rewardsearch.tasks.registry import resolve

    task: Task = resolve(cfg.name).from_config(cfg, seed)
    return task
