"""Numeric answers: finding numbers in model text, pulling the final answer out, and comparing it with gold.

Pure functions over strings and `Fraction`s, standard library only, so that reward modules exported from
a run can carry this file with them. What counts as a number:

- an optional minus sign glued to the digits (`-3`, `−3`), only where it cannot be a binary minus (`5-3`
  holds the numbers 5 and 3, not 5 and -3);
- an optional `$` before and `%` after (`$5`, `50%`: the value is 5 and 50; the unit is dropped, since gold
  answers are bare numbers);
- digits with thousands separators (`1,234`), a decimal part (`2.50`) or a denominator (`7/2`);
- a trailing sentence full stop is not a decimal point (`72.` is 72);
- any Unicode decimal digits (full-width, Arabic-Indic, ...) read as their ASCII values.
"""

from __future__ import annotations

import math
import re
import unicodedata
from fractions import Fraction

SOLUTION_OPEN = "<solution>"
SOLUTION_CLOSE = "</solution>"

# Signs that models (and Unicode-happy tokenizers) write for minus.
_MINUS_SIGNS = {"\u2212": "-", "\u2012": "-", "\u2013": "-", "\ufe63": "-", "\uff0d": "-"}

_NUMBER_RE = re.compile(
    r"(?:(?<![\w)\]])(?P<neg>-))?"  # a minus only where no operand precedes it: "x-3" and "5-3" are not -3
    r"\$?"
    r"(?<![\w.])"  # digits start a token: no "a12", and ".5" in "1.2.5" is not a new number
    r"(?P<int>[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])|[0-9]+)"
    r"(?:\.(?P<frac>[0-9]+))?"
    r"(?:/(?P<den>[0-9]+))?"
    r"(?![0-9])"
)


def _normalize(text: str) -> str:
    """NFKC plus ASCII digits and minus: "１２" -> "12", "٣" -> "3", "−3" -> "-3"."""
    text = unicodedata.normalize("NFKC", text)
    out = []
    for ch in text:
        if ch in _MINUS_SIGNS:
            out.append("-")
        elif not ch.isascii() and unicodedata.decimal(ch, None) is not None:
            out.append(str(unicodedata.decimal(ch)))
        else:
            out.append(ch)
    return "".join(out)


def _clean(match: re.Match[str]) -> str:
    """The canonical text of a matched number: sign, digits without separators, decimals, denominator."""
    text = ("-" if match["neg"] else "") + match["int"].replace(",", "")
    if match["frac"] is not None:
        text += "." + match["frac"]
    if match["den"] is not None:
        text += "/" + match["den"]
    return text


def _value(match: re.Match[str]) -> Fraction | None:
    value = Fraction(match["int"].replace(",", "") + ("." + match["frac"] if match["frac"] else ""))
    if match["den"] is not None:
        if int(match["den"]) == 0:
            return None  # "3/0" names no number
        value /= int(match["den"])
    return -value if match["neg"] else value


def _numbers(text: str) -> list[re.Match[str]]:
    return [m for m in _NUMBER_RE.finditer(_normalize(text)) if _value(m) is not None]


def parse_number(text: str | None) -> Fraction | None:
    """The value of the last number in `text`, or None if it holds none.

    >>> parse_number("$1,234.50")
    Fraction(2469, 2)
    >>> parse_number("The answer is 7/2.")
    Fraction(7, 2)
    """
    if not text:
        return None
    found = _numbers(text)
    return _value(found[-1]) if found else None


def _as_fraction(x: Fraction | int | str | None) -> Fraction | None:
    if x is None or isinstance(x, Fraction):
        return x
    if isinstance(x, int):
        return Fraction(x)
    return parse_number(x)


def numbers_equal(a: Fraction | int | str | None, b: Fraction | int | str | None) -> bool:
    """Numeric equality of two numbers or number texts; a side that holds no number is never equal.

    Exact for integers and fractions; decimals may differ by a relative 1e-9 (so "0.333333333333" == "1/3").

    >>> numbers_equal("1,000", "1000.00"), numbers_equal("$5", "5%"), numbers_equal("3", None)
    (True, True, False)
    """
    fa, fb = _as_fraction(a), _as_fraction(b)
    if fa is None or fb is None:
        return False
    if fa == fb:
        return True
    return abs(fa - fb) <= Fraction(1, 10**9) * max(abs(fa), abs(fb))


def relative_error(pred: Fraction | int | str | None, gold: Fraction | int | str | None) -> float | None:
    """|pred - gold| / |gold|; None if either holds no number; inf when gold is 0 and pred is not.

    >>> relative_error("110", "100")
    0.1
    """
    fp, fg = _as_fraction(pred), _as_fraction(gold)
    if fp is None or fg is None:
        return None
    if fg == 0:
        return 0.0 if fp == 0 else math.inf
    return float(abs(fp - fg) / abs(fg))


def extract_solution(text: str | None) -> str | None:
    """The stripped content of the last complete `<solution>...</solution>`, or None.

    The last closing tag pairs with the nearest opening tag before it, so a stray unclosed
    `<solution>` earlier in the text does not swallow the answer.

    >>> extract_solution("<solution>1</solution> no, <solution> 2 </solution>")
    '2'
    """
    if not text:
        return None
    end = text.rfind(SOLUTION_CLOSE)
    if end < 0:
        return None
    start = text.rfind(SOLUTION_OPEN, 0, end)
    if start < 0:
        return None
    return text[start + len(SOLUTION_OPEN) : end].strip()


def extract_flexible(text: str | None) -> str | None:
    """The last number anywhere in `text`, in canonical form ("$1,234." -> "1234"), or None.

    >>> extract_flexible("3 + 4 = 7, so 7 apples.")
    '7'
    """
    if not text:
        return None
    found = _numbers(text)
    return _clean(found[-1]) if found else None


def extract_strict(text: str | None) -> str | None:
    """The last number inside the last `<solution>...</solution>`, in canonical form, or None.

    >>> extract_strict("<thinking>2+2</thinking><solution>The answer is $4.</solution>")
    '4'
    >>> extract_strict("the answer is 4") is None
    True
    """
    return extract_flexible(extract_solution(text))
