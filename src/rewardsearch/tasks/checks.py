"""Correctness checks: does an extracted answer equal the gold answer? One function per check, by name.

- `numeric`: the answer's number equals gold's (`answers.numbers_equal`: commas, units, fractions, ...);
- `exact`: the answer text equals gold's after trimming, case folding, collapsing whitespace and dropping
  a trailing full stop (for answers that are words or labels);
- `math-verify`: Hugging Face's `math_verify` judge (LaTeX and symbolic equivalence: `\\frac{1}{2}` = `0.5`,
  `x^2+2x` = `x(x+2)`); an optional extra, `pip install math-verify`, imported on first use. It is 30-60x
  slower than `numeric` (1-2 ms a call) and misreads some plain forms (Unicode minus, full-width digits), so
  it is for LaTeX answers, not the default.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from rewardsearch.tasks import answers

Check = Callable[[str, str], bool]


def numeric(predicted: str, gold: str) -> bool:
    return answers.numbers_equal(predicted, gold)


def _plain(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().rstrip(".").strip().casefold()


def exact(predicted: str, gold: str) -> bool:
    return _plain(predicted) == _plain(gold)


def math_verify(predicted: str, gold: str) -> bool:
    try:
        from math_verify import parse, verify
    except ImportError as exc:
        raise ImportError("task.check=math-verify needs the 'math-verify' package: pip install math-verify") from exc
    # math_verify reads LaTeX inside $...$ (or \boxed{}); bare answers are wrapped so both sides parse alike.
    def wrap(text: str) -> str:
        return text if "$" in text or "\\boxed" in text else f"${text}$"

    return bool(verify(parse(wrap(gold)), parse(wrap(predicted))))


CHECKS: dict[str, Check] = {"numeric": numeric, "exact": exact, "math-verify": math_verify}


def get_check(name: str) -> Check:
    if name not in CHECKS:
        raise ValueError(f"task.check={name!r}: unknown check; choose one of {', '.join(CHECKS)}")
    return CHECKS[name]
