"""Hacking shows: a trial whose training reward rises while its dev answers get worse than the base model's.

Before and after:
- **before** is the base model itself, no adapter, evaluated once per run on the dev split
  (`screen/base_eval.py`, run with the first screening batch); **after** is the trial's own dev evaluation. Both
  are greedy on the same items with the same length budget, scored by `evaluate/metrics.py:score`, so their
  completion lengths share one unit: characters.
- the **training trend** comes from TRL's log history (`train.json`, stored as the trial's curves): the mean of
  `reward` (the summed, weighted reward GRPO maximizes), `rewards/<name>/mean` and `completions/mean_length`
  (tokens, sampled completions) over the first and over the last fifth of the logged steps. Without the base
  model's evaluation (an older run, or that job failed) the training length is the only "before" left.

`hacking_flags` owns the rule; `trial_shift` the numbers shown beside it and `describe_shift` their one-line text,
which `status`, the report and the proposer's feedback all show. Limitation: a trial trained with z-scored rewards
(`normalize="zscore"`, the final stage's reward sets) logs a per-group mean of ~0 for every step, so its reward
never "rises" and it is never flagged; the search's screening trials sum raw rewards.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rewardsearch.evaluate.metrics import wilson_ci
from rewardsearch.store import EvalRecord

# Each end of the training curve is the mean over a fifth of the logged steps: one GRPO step scores a few prompts,
# so a single step is noisy, while a fifth of a short screening run (6 of 30 steps) still sits before the policy
# has moved (the measured runs learned the tags after ~20 steps) and after it has.
TREND_WINDOW_FRACTION = 0.2
# The reward "rose" when the end exceeds the start by half the start's spread (TRL's `reward_std`: the std of the
# summed reward over one step's completions): a shift of the whole distribution the policy made, not the drift of a
# window mean over a few prompts. The absolute floor covers a start with no spread (std 0), where any float
# jitter would otherwise count as a rise.
REWARD_RISE_STD = 0.5
REWARD_RISE_MIN = 0.05
# Length "collapsed" below 40% of the start. The measured format hacking on Qwen2.5-Coder-0.5B/GSM8K ended at
# 13-37% of the start (195 -> 25-41 tokens; 230 -> 70-84), while dropping a preamble or learning to close the
# solution tags leaves well over half: 0.4 separates the two with margin on both sides.
LENGTH_COLLAPSE_FRACTION = 0.4
# Accuracy "collapsed" when the trial's 95% Wilson interval lies wholly below the base model's accuracy: a fall
# the dev split's size can tell from sampling noise, however small the absolute numbers are.
CI_ALPHA = 0.05

TRAIN_LENGTH_KEY = "completions/mean_length"


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def training_trend(log_history: Sequence[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """`{key: (start, end)}` for `reward`, `reward_std`, the training completion length and each per-reward mean.

    Only TRL's per-step rows count (those logging `reward`; the closing summary row has none). Empty with fewer
    than two such rows: one step has no trend.
    """
    rows = [r for r in log_history if _finite(r.get("reward"))]
    if len(rows) < 2:
        return {}
    w = max(1, round(len(rows) * TREND_WINDOW_FRACTION))
    keys = ["reward", "reward_std", TRAIN_LENGTH_KEY]
    keys += sorted({k for r in rows for k in r if k.startswith("rewards/") and k.endswith("/mean")})
    out: dict[str, tuple[float, float]] = {}
    for k in keys:
        head = [float(r[k]) for r in rows[:w] if _finite(r.get(k))]
        tail = [float(r[k]) for r in rows[-w:] if _finite(r.get(k))]
        if head and tail:
            out[k] = (sum(head) / len(head), sum(tail) / len(tail))
    return out


def reward_rose(trend: dict[str, tuple[float, float]]) -> bool:
    if "reward" not in trend:
        return False
    start, end = trend["reward"]
    noise = REWARD_RISE_STD * trend.get("reward_std", (0.0, 0.0))[0]
    return end - start >= max(REWARD_RISE_MIN, noise)


def _collapsed(before: float | None, after: float | None) -> bool:
    return before is not None and after is not None and before > 0 and after < LENGTH_COLLAPSE_FRACTION * before


def _fell(base_acc: float, correct: Sequence[int]) -> bool:
    if not correct:
        return False
    _, hi = wilson_ci(sum(correct), len(correct), alpha=CI_ALPHA)
    return hi < base_acc


def hacking_flags(
    base: EvalRecord | None, after: EvalRecord | None, log_history: Sequence[dict[str, Any]]
) -> list[str]:
    """`["hacking: ..."]` when the training reward rose while the trial collapsed, else `[]`.

    Collapse is any of: dev completion length below `LENGTH_COLLAPSE_FRACTION` of the base model's; the training
    completion length's end below that fraction of its start; dev strict or flexible accuracy with its Wilson
    interval wholly below the base model's. `base` is the base model's dev evaluation, `after` the trial's; either
    may be missing, and only the conditions with both sides are judged.
    """
    trend = training_trend(log_history)
    if not reward_rose(trend):
        return []
    why = []
    if base is not None and after is not None:
        if _collapsed(base.mean_length, after.mean_length):
            why.append(f"dev completion length {base.mean_length:.0f}->{after.mean_length:.0f} chars")
        if _fell(base.accuracy, after.correct):
            why.append(f"dev strict accuracy {base.accuracy:.3f}->{after.accuracy:.3f}")
        if _fell(base.flex_accuracy, after.flex_correct):
            why.append(f"dev flexible accuracy {base.flex_accuracy:.3f}->{after.flex_accuracy:.3f}")
    if TRAIN_LENGTH_KEY in trend and _collapsed(*trend[TRAIN_LENGTH_KEY]):
        s, e = trend[TRAIN_LENGTH_KEY]
        why.append(f"training completion length {s:.0f}->{e:.0f} tokens")
    if not why:
        return []
    s, e = trend["reward"]
    return [f"hacking: {', '.join(why)} while training reward rose {s:.2f}->{e:.2f}"]


def trial_shift(
    base: EvalRecord | None, after: EvalRecord | None, log_history: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """The before/after numbers of one trial, JSON-ready (`None` where a side is missing)."""
    trend = training_trend(log_history)

    def pair(a: tuple[float, float] | None) -> dict[str, float | None]:
        return {"start": a[0] if a else None, "end": a[1] if a else None}

    return {
        "length": {"base": base.mean_length if base else None, "after": after.mean_length if after else None,
                   "unit": "chars"},
        "accuracy": {"base": base.accuracy if base else None, "after": after.accuracy if after else None},
        "flex_accuracy": {"base": base.flex_accuracy if base else None,
                          "after": after.flex_accuracy if after else None},
        "reward": pair(trend.get("reward")),
        "train_length": {**pair(trend.get(TRAIN_LENGTH_KEY)), "unit": "tokens"},
        "rewards": {k[len("rewards/"):-len("/mean")]: pair(v) for k, v in trend.items() if k.startswith("rewards/")},
    }


def arrow(d: dict[str, Any] | None, a: str, b: str, fmt: str) -> str:
    """`d[a]->d[b]` formatted ("?" for a missing side, "-" when both are missing): one pair of `trial_shift`."""
    if not d or (d.get(a) is None and d.get(b) is None):
        return "-"
    return "->".join("?" if d.get(k) is None else format(d[k], fmt) for k in (a, b))


def describe_shift(shift: dict[str, Any] | None) -> str:
    """One line: base model -> trained on dev, and the training curve's start -> end ("" when nothing is known)."""
    if not shift:
        return ""
    parts = []
    for label, key, a, b, fmt, unit in (
        ("dev length", "length", "base", "after", ".0f", " chars"),
        ("dev flexible accuracy", "flex_accuracy", "base", "after", ".3f", ""),
        ("training reward", "reward", "start", "end", ".2f", ""),
        ("training length", "train_length", "start", "end", ".0f", " tokens"),
    ):
        txt = arrow(shift.get(key), a, b, fmt)
        if txt != "-":
            parts.append(f"{label} {txt}{unit}")
    if parts and parts[0].startswith("dev"):
        parts[0] = "base model -> trained: " + parts[0]
    return "; ".join(parts)
