"""Early stop inside a rung: the rule that calls a screening trial clearly dead, read from TRL's logged steps.

A trial is dead when any of (each switched off by 0 in `screen.early_stop`):
- `reward_std` (TRL: the mean within-group std of the summed reward) was exactly 0 for `zero_std_steps` logged steps
  in a row: no group had any spread, so every advantage was 0 and the policy got no gradient from the rewards;
- the loss or the grad norm was non-finite for `nan_steps` logged steps in a row: those steps were skipped
  (`screen/nonfinite.py`), so the trial has stopped learning;
- the mean sampled completion length over the last `length_window` logged steps fell below `length_fraction` of
  the first window's. The hacking flag (`search/hacking.py`) marks a fall to 40% for the report; stopping is
  irreversible, so this rule waits for a far deeper collapse (default 10%: a policy answering in a token or two).

`dead_reason` is called after every logged step by the trial (`screen/halving.py:RungCallback`) and owns the rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rewardsearch.config import EarlyStopConfig

LENGTH_KEY = "completions/mean_length"


def finite(v: Any) -> bool:
    """A logged number that is finite (a NaN or inf, or a missing value, is not)."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _run_length(rows: Sequence[dict[str, Any]], bad: Any) -> int:
    """How many of the last rows in a row satisfy `bad`."""
    n = 0
    for row in reversed(rows):
        if not bad(row):
            break
        n += 1
    return n


def dead_reason(log_history: Sequence[dict[str, Any]], cfg: EarlyStopConfig) -> str | None:
    """Why the trial is dead after these logged steps (TRL's `log_history`), or None while it is alive."""
    rows = [r for r in log_history if "loss" in r or "reward" in r]  # per-step rows; the closing summary has neither
    if cfg.zero_std_steps:
        n = _run_length(rows, lambda r: r.get("reward_std") == 0)
        if n >= cfg.zero_std_steps:
            return f"reward std 0 in every GRPO group for {n} logged steps in a row (no policy gradient)"
    if cfg.nan_steps:
        n = _run_length(rows, lambda r: any(k in r and not finite(r[k]) for k in ("loss", "grad_norm")))
        if n >= cfg.nan_steps:
            return f"non-finite loss or grad norm for {n} logged steps in a row"
    if cfg.length_fraction:
        lengths = [float(r[LENGTH_KEY]) for r in rows if finite(r.get(LENGTH_KEY))]
        w = cfg.length_window
        if len(lengths) >= 2 * w:
            start, end = sum(lengths[:w]) / w, sum(lengths[-w:]) / w
            if start > 0 and end < cfg.length_fraction * start:
                return (f"completion length collapsed {start:.0f}->{end:.0f} tokens (below {cfg.length_fraction:.0%} "
                        f"of the first {w} logged steps)")
    return None
