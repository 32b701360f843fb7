"""Grading that holds up: no input crashes it, the widened notation reads right, and strict grading agrees
with a hand-labelled set of completions (tests/data/graded_completions.jsonl, by category).

Run: python -m pytest tests/test_grading.py -q -s   (-s prints the agreement table)
"""

from __future__ import annotations

import json
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

import pytest

from rewardsearch.rewards.base import BASE_REWARDS, answer_reward
from rewardsearch.tasks.answers import (
    MAX_DIGITS,
    extract_flexible,
    extract_strict,
    numbers_equal,
    parse_number,
    relative_error,
)

GRADED = Path(__file__).parent / "data" / "graded_completions.jsonl"


def sol(text: str) -> str:
    return f"<thinking>work</thinking><solution>{text}</solution>"


# --- nothing crashes --------------------------------------------------------------------------------------

# Lengths around the float range (~309 digits) and CPython's int/str limit (4,300 digits).
LENGTHS = [308, 309, 310, 400, MAX_DIGITS, MAX_DIGITS + 1, 4300, 4301, 20_000]


@pytest.mark.parametrize("n", LENGTHS)
def test_long_numbers_grade_without_error(n: int) -> None:
    big = "9" * n
    for text in (sol(big), sol(f"{big}.5"), sol(f"1/{big}"), sol(f"-{big}"), sol(f"{big} m^2")):
        predicted = extract_strict(text)
        assert predicted is not None, "a long number is still an answer"
        assert not numbers_equal(predicted, "18")
        assert answer_reward(None, [text], ["18"]) == [-1.5]
        for fn in BASE_REWARDS:
            assert len(fn(None, [text], ["18"])) == 1


@pytest.mark.parametrize("n", LENGTHS)
def test_relative_error_never_overflows(n: int) -> None:
    error = relative_error("9" * n, "5")
    if n > MAX_DIGITS:
        assert error is None  # too long to read
    else:
        assert error is not None and error > 1e300  # inf once the ratio leaves the float range
    assert relative_error("1", "9" * min(n, MAX_DIGITS)) == pytest.approx(1.0)


def test_long_numbers_read_exactly_up_to_the_limit() -> None:
    big = "7" * MAX_DIGITS
    assert parse_number(big) == Fraction(int(big))
    assert numbers_equal(sol(big), big)
    assert parse_number("7" * (MAX_DIGITS + 1)) is None  # too long to read: equals nothing


@pytest.mark.parametrize(
    "text",
    ["2^9999999", "2^-9999999", "10^{99999999999}", "1e999999", "1.5 \\times 10^{9999999}", "0^-1", "0^{-3}",
     "9" * 2000 + "^9", "\\frac{1}{0}", "\\frac{" + "9" * 5000 + "}{2}", "3/0", "\\frac{}{}", "\\frac", "^{", "²" * 50],
)  # fmt: skip
def test_hostile_notation_grades_without_error(text: str) -> None:
    for t in (text, sol(text)):
        extract_flexible(t)
        extract_strict(t)
        parse_number(t)
        for fn in BASE_REWARDS:
            assert len(fn(None, [t], ["18"])) == 1


def test_huge_power_is_an_answer_that_equals_nothing() -> None:
    assert extract_strict(sol("2^9999999")) == "2^9999999"
    assert answer_reward(None, [sol("2^9999999")], ["18"]) == [-1.5]


# --- the widened notation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (r"\frac{7}{2}", Fraction(7, 2)),
        (r"$\dfrac{7}{2}$", Fraction(7, 2)),
        (r"\tfrac12", Fraction(1, 2)),
        (r"-\frac{7}{2}", Fraction(-7, 2)),
        (r"3\frac{1}{2}", Fraction(7, 2)),  # a mixed number, not 3 then 1/2
        (r"\frac{1.5}{3}", Fraction(1, 2)),
        (r"$1{,}000$", Fraction(1000)),
        (r"18\,000", Fraction(18000)),
        (r"\$25", Fraction(25)),
        ("1 000", Fraction(1000)),
        ("1\u00a0000", Fraction(1000)),  # no-break space
        ("1\u202f000", Fraction(1000)),  # narrow no-break space
        ("2 500 000", Fraction(2500000)),
        ("1 2345", Fraction(2345)),  # four digits after the space: two numbers
        (".5", Fraction(1, 2)),
        ("-.5", Fraction(-1, 2)),
        ("so...18", Fraction(18)),  # an ellipsis is no decimal point
        ("18 m^2", Fraction(18)),
        ("18 m²", Fraction(18)),
        ("18 cm^{2}", Fraction(18)),
        ("10²", Fraction(100)),  # NFKC alone would read 102
        ("x² = 18", Fraction(18)),
        ("2^10", Fraction(1024)),
        ("10^{-2}", Fraction(1, 100)),
        ("7/2^2", Fraction(7, 4)),
        ("1.5e3", Fraction(1500)),
        (r"1.2 \times 10^3", Fraction(1200)),
        ("3½", Fraction(7, 2)),
        ("答案是18", Fraction(18)),
        ("所以她有72个夹子。", Fraction(72)),
        ("答案是-3", Fraction(-3)),
        ("合計は36円です", Fraction(36)),
        ("seventeen", Fraction(17)),
        ("Twenty-five", Fraction(25)),
        ("ninety nine", Fraction(99)),
        ("zero", Fraction(0)),
        ("18 (9 eggs at $2 each)", Fraction(18)),
        ("20 apples (not 18)", Fraction(20)),
        ("$72 [48 + 24]", Fraction(72)),
        ("(18)", Fraction(18)),
        ("(9 x 2) = 18", Fraction(18)),
        ("24 in May. (72 in all)", Fraction(72)),
        ("Step 2: (18 in all)", Fraction(18)),
    ],
)
def test_notation(text: str, value: Fraction) -> None:
    assert parse_number(text) == value
    assert numbers_equal(extract_strict(sol(text)), value)


@pytest.mark.parametrize("text", ["a18", "x2", "CO2", "version2"])
def test_digits_glued_to_letters_are_no_number(text: str) -> None:
    assert parse_number(text) is None


def test_number_words_only_where_no_numeral_is() -> None:
    assert parse_number("one of them costs 18") == 18  # "one" is a pronoun beside a numeral
    assert parse_number("someone ate it") is None  # no word boundary, no number


# --- agreement with hand labels ---------------------------------------------------------------------------


def _grade(completion: str, gold: str) -> str:
    predicted = extract_strict(completion)
    if predicted is None:
        return "unanswered"
    return "correct" if numbers_equal(predicted, gold) else "wrong"


def test_agreement_with_hand_labels() -> None:
    rows = [json.loads(line) for line in GRADED.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(rows) >= 60
    by_cat: dict[str, list[bool]] = defaultdict(list)
    misses = []
    for r in rows:
        assert r["label"] in ("correct", "wrong", "unanswered"), r
        got = _grade(r["completion"], r["gold"])
        by_cat[r["category"]].append(got == r["label"])
        if got != r["label"]:
            misses.append(f"{r['id']} ({r['category']}, {r['note']}): graded {got}, labelled {r['label']}")
    print("\ncategory      agree / n")
    for cat, hits in by_cat.items():
        print(f"{cat:<13} {sum(hits):>5} / {len(hits)}")
    total = sum(sum(h) for h in by_cat.values())
    print(f"{'all':<13} {total:>5} / {len(rows)}\n" + "\n".join(misses))
    # The forms the task card names must all agree; elsewhere one known miss (a result stated inside the
    # brackets after another number, g070) is allowed per category.
    assert all(by_cat["contract"]), misses
    assert all(len(h) - sum(h) <= 1 for h in by_cat.values()), misses
    assert total / len(rows) >= 0.97, misses
