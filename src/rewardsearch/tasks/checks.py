"""Correctness checks: does an extracted answer equal the gold answer? One function per check, by name.

- `numeric`: the answer's number equals gold's (`answers.numbers_equal`: commas, units, fractions, ...);
- `exact`: the answer text equals gold's after trimming, case folding, collapsing whitespace and dropping
  a trailing full stop (for answers that are words or labels);
- `math-verify`: Hugging Face's `math_verify` judge (LaTeX and symbolic equivalence: `\\frac{1}{2}` = `0.5`,
  `x^2+2x` = `x(x+2)`); an optional extra, `pip install 'rewardsearch[math]'`, imported on first use.

Before math-verify sees them, both texts get `answers.plain_chars` (ASCII digits and minus signs), because
math-verify 0.9.0 misreads some plain forms: full-width digits (`７２`) parse as nothing and an en dash is
no minus to it (`–3` is not -3, `x – 1` is not x-1); the Unicode minus sign (`−3`) it reads itself. And where gold is one plain number, an answer holding more than one number is
not correct (counted right of the last `=`): math-verify evaluates arithmetic, so `9 * 8` and `12-5` would
pass as 72 and 7, and a policy could learn to copy the question's computation instead of doing it. It is 15-25x slower than `numeric` on
numbers (0.6-1.2 ms a call on this project's 2-core CPU machine, 8-9 ms for a symbolic pair; see
docs/tasks.md), and it runs only in the main thread: its timeout is `signal.alarm`, and in another thread it
logs an error and answers False, which would grade every answer wrong without saying so.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

from rewardsearch.tasks import answers

Check = Callable[[str, str], bool]


def numeric(predicted: str, gold: str) -> bool:
    return answers.numbers_equal(predicted, gold)


def _plain(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().rstrip(".").strip().casefold()


def exact(predicted: str, gold: str) -> bool:
    return _plain(predicted) == _plain(gold)


def _one_plain_number(text: str) -> bool:
    """Whether `text` is nothing but one number as `answers` reads it ("72", "-3.5", "\\frac{7}{2}", "$1,234$")."""
    norm, found = answers.numbers(text.strip().strip("$").strip())
    return len(found) == 1 and found[0].start == 0 and found[0].end == len(norm.strip())


def math_verify(predicted: str, gold: str) -> bool:
    try:
        from math_verify import parse, verify
    except ImportError as exc:
        raise ImportError(
            "task.check=math-verify needs the 'math-verify' package: pip install 'rewardsearch[math]'"
        ) from exc
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("task.check=math-verify must grade in the main thread (its timeout uses signal.alarm)")
    predicted, gold = answers.plain_chars(predicted), answers.plain_chars(gold)
    # Counted right of the last '=', as math-verify reads an equation ('9 \\times 8 = 72' answers 72).
    if _one_plain_number(gold) and len(answers.numbers(predicted.rsplit("=", 1)[-1])[1]) > 1:
        return False  # '9 * 8' for 72: a computation, not its value (see the module docstring)

    # math_verify reads LaTeX inside $...$ (or \boxed{}); bare answers are wrapped so both sides parse alike.
    def wrap(text: str) -> str:
        return text if "$" in text or "\\boxed" in text else f"${text}$"

    return bool(verify(parse(wrap(gold)), parse(wrap(predicted))))


CHECKS: dict[str, Check] = {"numeric": numeric, "exact": exact, "math-verify": math_verify}


def get_check(name: str) -> Check:
    if name not in CHECKS:
        raise ValueError(f"task.check={name!r}: unknown check; choose one of {', '.join(CHECKS)}")
    return CHECKS[name]
