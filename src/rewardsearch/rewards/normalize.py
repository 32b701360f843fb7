"""Per-reward z-score within the GRPO group: how an ensemble's members are put on one scale.

Standard library only: exported reward modules carry this file's code verbatim, so a reward set trains the same
way in TRL outside rewardsearch.

Why a z-score within the group, and not TRL's static `reward_weights`: GRPO only uses differences between the
completions of one prompt (advantage = reward minus the group mean, over the group std). A member whose scores
span [-100, 100] would otherwise decide every advantage alone, and its spread is not known before training (it
changes as the policy changes). Standardizing each member inside each group gives every member the same say in
every group, whatever its units, and needs no scale estimate. A member that gives the whole group one score
(std 0) has no preference there and contributes 0. `None` ("no opinion") stays `None`, and TRL sums the rest.
Static weights stay in use on top, for the share each member gets (the three base rewards share one member's
weight, see `screen/trial.py`). Recent TRL releases offer the same idea built in
(`GRPOConfig.multi_objective_aggregation="normalize_then_sum"`, after the GDPO paper); this wrapper keeps it
independent of the TRL version and lets it travel into exports.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any


def _group_stats(scores: Sequence[float | None], group: Sequence[int]) -> tuple[int, float, float]:
    """(count, mean, population std) of a group's non-None scores; (0, 0.0, 0.0) when it has none."""
    values = [float(scores[i]) for i in group if scores[i] is not None]  # type: ignore[arg-type]
    if not values:
        return 0, 0.0, 0.0
    mean = sum(values) / len(values)
    return len(values), mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def zscore_groups(
    scores: Sequence[float | None], groups: Sequence[Sequence[int]], eps: float = 1e-6,
    stats: Sequence[tuple[int, float, float]] | None = None,
) -> list[float | None]:
    """Each group's non-None scores minus their mean, over their population std; 0.0 where std <= eps.

    `stats` (one `_group_stats` per group) skips recomputing them when the caller already has them.

    >>> zscore_groups([1.0, 3.0, None, 5.0, 5.0], [[0, 1, 2], [3, 4]])
    [-1.0, 1.0, None, 0.0, 0.0]
    """
    out: list[float | None] = [None] * len(scores)
    for k, group in enumerate(groups):
        _n, mean, std = stats[k] if stats is not None else _group_stats(scores, group)
        for i in group:
            s = scores[i]
            if s is not None:
                out[i] = (float(s) - mean) / std if std > eps else 0.0
    return out


def group_indices(prompts: Sequence[Any], group_size: int) -> list[list[int]]:
    """The GRPO groups of a batch: consecutive runs of `group_size` completions of one prompt (TRL's layout).

    When the batch does not have that layout (length not a multiple, or a run mixing prompts), completions are
    grouped by identical prompt instead.
    """
    n = len(prompts)
    key = [json.dumps(p, sort_keys=True, default=str) for p in prompts]
    if group_size > 0 and n % group_size == 0:
        chunks = [list(range(s, s + group_size)) for s in range(0, n, group_size)]
        if all(len({key[i] for i in c}) == 1 for c in chunks):
            return chunks
    by_prompt: dict[str, list[int]] = {}
    for i, k in enumerate(key):
        by_prompt.setdefault(k, []).append(i)
    return list(by_prompt.values())


class GroupZScore:
    """Wraps a TRL reward function so it returns its scores z-scored within each GRPO group.

    `raw_mean` and `group_std` (running means over calls) describe the raw scale the wrapper removed; exports to
    engines that score one completion at a time use `group_std` as a static scale. When TRL passes `log_metric`,
    the raw mean and within-group std of each call are logged as `rewards/{name}/raw_mean` and `.../group_std`.
    """

    def __init__(self, fn: Callable[..., list[float | None]], group_size: int) -> None:
        self.fn = fn
        self.group_size = group_size
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)
        self.calls = 0
        self._raw_sum = 0.0
        self._raw_n = 0
        self._std_sum = 0.0
        self._std_n = 0

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float | None]:
        raw = self.fn(prompts=prompts, completions=completions, **kwargs)
        groups = group_indices(prompts, self.group_size)
        stats = [_group_stats(raw, g) for g in groups]  # once: for the log and for the z-scores
        self.calls += 1
        n = sum(c for c, _, _ in stats)
        total = sum(c * m for c, m, _ in stats)
        stds = [sd for c, _, sd in stats if c > 1]
        self._raw_sum += total
        self._raw_n += n
        self._std_sum += sum(stds)
        self._std_n += len(stds)
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            if n:
                log_metric(f"rewards/{self.__name__}/raw_mean", total / n)
            if stds:
                log_metric(f"rewards/{self.__name__}/group_std", sum(stds) / len(stds))
        return zscore_groups(raw, groups, stats=stats)

    @property
    def raw_mean(self) -> float | None:
        return self._raw_sum / self._raw_n if self._raw_n else None

    @property
    def group_std(self) -> float | None:
        return self._std_sum / self._std_n if self._std_n else None

    def summary(self) -> dict[str, float | int | None]:
        return {"calls": self.calls, "raw_mean": self.raw_mean, "group_std": self.group_std}
