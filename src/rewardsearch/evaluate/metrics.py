"""Scoring of generated answers against a task: per-item vectors and the summary metrics built on them.

Accuracy is strict (the number inside the solution tags); flexible accuracy takes the last number anywhere;
extraction rate is the share of completions with a strict answer; mean length is the mean completion length in
characters. Characters, not tokens: scoring sees only the decoded text (no tokenizer here, and the driver that
compares a trial with the base model holds none), and before/after comparisons need one unit, which this function
alone decides. `f1` is the published reference's F1, which is exactly 2*acc/(1+acc): it is kept only for
comparison with that paper and carries nothing beyond accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence

from rewardsearch.store import EvalRecord
from rewardsearch.tasks.base import Problem, Task


def wilson_ci(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval of a proportion (well behaved at 0 and 1, unlike the normal one)."""
    from rewardsearch.evaluate.stats import wilson_interval

    lo, hi = wilson_interval(successes, n, 1 - alpha)
    return (lo, hi)


def paper_f1(accuracy: float) -> float:
    return 2 * accuracy / (1 + accuracy) if accuracy > 0 else 0.0


def score(
    task: Task, problems: Sequence[Problem], texts: Sequence[str], trial_id: str, split: str,
    wall_s: float | None = None,
) -> EvalRecord:
    if len(problems) != len(texts):
        raise ValueError(f"{len(problems)} problems but {len(texts)} completions")
    correct, flex, extracted = [], [], []
    for p, text in zip(problems, texts, strict=True):
        strict = task.extract_strict(text)
        loose = task.extract_flexible(text)
        extracted.append(int(strict is not None))
        correct.append(int(task.is_correct(strict, p.answer)))
        flex.append(int(task.is_correct(loose, p.answer)))
    n = len(problems)
    acc = sum(correct) / n if n else 0.0
    mean_length = sum(len(t) for t in texts) / n if n else None
    return EvalRecord(
        trial_id=trial_id,
        split=split,
        item_ids=[p.id for p in problems],
        correct=correct,
        flex_correct=flex,
        extracted=extracted,
        accuracy=acc,
        flex_accuracy=sum(flex) / n if n else 0.0,
        extraction_rate=sum(extracted) / n if n else 0.0,
        f1=paper_f1(acc),
        ci95=wilson_ci(sum(correct), n),
        wall_s=wall_s,
        mean_length=mean_length,
    )
