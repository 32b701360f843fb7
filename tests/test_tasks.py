"""Tasks: answer extraction, arith generation and splits, gsm8k loading.

Run: python -m pytest tests/test_tasks.py -q
"""

from __future__ import annotations

import json
import re
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest

from rewardsearch.config import ArithConfig, TaskConfig
from rewardsearch.tasks import SYSTEM_PROMPT, Problem, load_task
from rewardsearch.tasks.answers import (
    extract_flexible,
    extract_solution,
    extract_strict,
    numbers_equal,
    parse_number,
    relative_error,
)
from rewardsearch.tasks.arith import ArithTask
from rewardsearch.tasks.gsm8k import GSM8KTask, gold_answer

GSM8K_DIR = Path(__file__).resolve().parents[2] / "shared/data/gsm8k"
needs_gsm8k = pytest.mark.skipif(
    not (GSM8K_DIR / "train.jsonl").is_file(), reason=f"GSM8K data not found at {GSM8K_DIR}"
)

# --- answers.py ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1,234", Fraction(1234)),
        ("1,234,567", Fraction(1234567)),
        ("$5", Fraction(5)),
        ("-$5", Fraction(-5)),
        ("50%", Fraction(50)),
        ("72.", Fraction(72)),
        ("-3", Fraction(-3)),
        ("x = -3", Fraction(-3)),
        ("2.50", Fraction(5, 2)),
        ("7/2", Fraction(7, 2)),
        ("The answer is 18 dollars.", Fraction(18)),
        ("\uff11\uff12", Fraction(12)),  # full-width digits
        ("\u0663\u0664", Fraction(34)),  # Arabic-Indic digits
        ("\u22124", Fraction(-4)),  # Unicode minus sign
        ("5-3", Fraction(3)),  # a binary minus is not a sign
        ("5 - 3", Fraction(3)),
        ("1,2345", Fraction(2345)),  # not a thousands separator
    ],
)
def test_parse_number(text: str, value: Fraction) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize("text", ["", "no number here", None, "3/0"])
def test_parse_number_none(text: str | None) -> None:
    assert parse_number(text) is None


def test_numbers_equal() -> None:
    assert numbers_equal("1,000", "1000")
    assert numbers_equal("$1,000.00", "1000")
    assert numbers_equal("7/2", "3.5")
    assert numbers_equal("0.333333333333", "1/3")  # relative tolerance 1e-9
    assert numbers_equal(Fraction(3), 3)
    assert not numbers_equal("0.33", "1/3")
    assert not numbers_equal("3", "-3")
    assert not numbers_equal(None, "3")
    assert not numbers_equal("abc", "abc")


def test_relative_error() -> None:
    assert relative_error("110", "100") == pytest.approx(0.1)
    assert relative_error("-5", "5") == pytest.approx(2.0)
    assert relative_error("0", "0") == 0.0
    assert relative_error("1", "0") == float("inf")
    assert relative_error(None, "5") is None
    assert relative_error("5", "none") is None


def test_extract_solution() -> None:
    assert extract_solution("<solution> 42 </solution>") == "42"
    assert extract_solution("<solution>1</solution> wait <solution>2</solution>") == "2"
    assert extract_solution("<solution>1</solution> then <solution>2") == "1"  # last *complete* pair
    assert extract_solution("<solution>oops <solution>3</solution>") == "3"
    assert extract_solution("no tags 5") is None
    assert extract_solution("</solution>5<solution>") is None
    assert extract_solution("") is None


@pytest.mark.parametrize(
    ("text", "strict", "flexible"),
    [
        ("<thinking>12+5=17</thinking><solution>17</solution>", "17", "17"),
        ("<solution>$1,234.</solution>", "1234", "1234"),
        ("<solution>50%</solution>", "50", "50"),
        ("<solution>-3</solution>", "-3", "-3"),
        ("<solution>2.50</solution>", "2.50", "2.50"),
        ("<solution>7/2</solution>", "7/2", "7/2"),
        ("<solution>The answer is 9 apples.</solution>", "9", "9"),
        ("<solution>1</solution> no, <solution>2</solution>", "2", "2"),
        ("<solution>6</solution> so 6 - 1 = 5", "6", "5"),  # strict looks inside the tags only
        ("12 + 5 = 17, minus 3 gives 14.", None, "14"),  # no tags: strict None, flexible last number
        ("<solution>seventeen</solution> 17", "17", "17"),  # a number word where no numeral is
        ("<solution>banana</solution> 17", None, "17"),  # tags without a number
        ("", None, None),
    ],
)
def test_extract_strict_and_flexible(text: str, strict: str | None, flexible: str | None) -> None:
    assert extract_strict(text) == strict
    assert extract_flexible(text) == flexible


# --- arith -----------------------------------------------------------------------------------------------

SMALL = ArithConfig(train_size=600, dev_size=200, test_size=200)


@pytest.fixture(scope="module")
def arith() -> ArithTask:
    return ArithTask(SMALL, seed=0)


def test_arith_splits_sized_and_disjoint(arith: ArithTask) -> None:
    splits = {name: arith.split(name) for name in ("train", "dev", "test")}
    assert {k: len(v) for k, v in splits.items()} == {"train": 600, "dev": 200, "test": 200}
    questions = [p.question for v in splits.values() for p in v]
    assert len(questions) == len(set(questions)), "a question appears twice (within or across splits)"
    assert splits["dev"][0].id == "arith-dev-00000"
    assert splits["train"][599].id == "arith-train-00599"


def test_arith_seeded() -> None:
    a, b, c = ArithTask(SMALL, 0), ArithTask(SMALL, 0), ArithTask(SMALL, 1)
    for split in ("train", "dev", "test"):
        assert a.split(split) == b.split(split)
        assert a.split(split) != c.split(split)


def test_arith_test_split_independent_of_other_sizes() -> None:
    bigger = ArithConfig(train_size=900, dev_size=300, test_size=200)
    assert ArithTask(SMALL, 0).split("test") == ArithTask(bigger, 0).split("test")


def test_arith_steps_mix_honoured(arith: ArithTask) -> None:
    counts = Counter(len(arith.item(p.id).steps) for p in arith.split("train"))
    total = sum(SMALL.steps_mix.values())
    for steps, weight in SMALL.steps_mix.items():
        assert counts[steps] / 600 == pytest.approx(weight / total, abs=0.06), counts


def test_arith_steps_mix_only_one() -> None:
    task = ArithTask(ArithConfig(train_size=50, dev_size=10, test_size=10, steps_mix={3: 1.0}), 0)
    assert all(len(task.item(p.id).steps) == 3 for p in task.split("train"))


def test_arith_answers_are_positive_integers_and_divisions_exact(arith: ArithTask) -> None:
    n_div = 0
    for p in arith.split("train") + arith.split("dev") + arith.split("test"):
        item = arith.item(p.id)
        assert re.fullmatch(r"[1-9][0-9]*", p.answer), p
        value = Fraction(item.start)
        for op, n in item.steps:
            if op == "div":
                n_div += 1
                assert value % n == 0, f"{p.id}: {value} / {n} is not whole"
            value = {"add": value + n, "sub": value - n, "mul": value * n, "div": value / n}[op]
            assert value >= 1 and value.denominator == 1, p
        assert value == int(p.answer)
        assert Fraction(eval(item.expression)) == int(p.answer)  # the stored expression agrees
    assert n_div > 50


def test_arith_ops_restricted() -> None:
    task = ArithTask(ArithConfig(train_size=100, dev_size=10, test_size=10, ops=["div"]), 0)
    for p in task.split("train"):
        item = task.item(p.id)
        assert {op for op, _ in item.steps} == {"div"}
        assert int(p.answer) >= 1


# An independent reader of the generated text: it splits the question into clauses and reads the
# operation from its words, so a template that says one thing but computes another fails here.
_OP_WORDS = [
    ("mul", ("times", "multipl")),
    ("div", ("equal", "divide")),
    ("add", ("more", "add", "earn", "receive", "increase")),
    ("sub", ("away", "lose", "sell", "give", "spend", "pay", "subtract", "decrease")),
]


def _solve_from_text(question: str) -> int:
    clauses = [c for c in re.split(r"[.,?]\s+|[.?]$|, then ", question) if re.search(r"[0-9]", c)]
    value = int(re.search(r"[0-9]+", clauses[0]).group())  # type: ignore[union-attr]
    for clause in clauses[1:]:
        numbers = re.findall(r"[0-9]+", clause)
        assert len(numbers) == 1, clause
        n = int(numbers[0])
        lowered = clause.lower()
        op = next(op for op, words in _OP_WORDS if any(w in lowered for w in words))
        value = {"add": value + n, "sub": value - n, "mul": value * n, "div": value // n}[op]
    return value


def test_arith_text_says_what_the_answer_computes(arith: ArithTask) -> None:
    for p in arith.split("dev"):
        assert _solve_from_text(p.question) == int(p.answer), p.question


def test_arith_templates_read_naturally(arith: ArithTask) -> None:
    styles = Counter()
    for p in arith.split("train"):
        assert p.question.endswith("?") and p.question[0].isupper()
        assert "{" not in p.question and "None" not in p.question
        styles["$" in p.question, p.question.startswith(("Start", "Take", "Think"))] += 1
    assert len(styles) == 3  # things, money and puzzle styles all occur


def test_arith_prompt_and_correctness(arith: ArithTask) -> None:
    p = arith.split("dev")[0]
    assert arith.prompt(p) == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": p.question},
    ]
    assert arith.is_correct(p.answer, p.answer)
    assert arith.is_correct(f"{int(p.answer):,}.", p.answer)
    assert not arith.is_correct(str(int(p.answer) + 1), p.answer)
    assert not arith.is_correct(None, p.answer)
    assert arith.extract_strict(f"<thinking>..</thinking><solution>{p.answer}</solution>") == p.answer
    assert arith.extract_flexible(f"so it is {p.answer}.") == p.answer


def test_card_mentions_format_and_example(arith: ArithTask) -> None:
    card = arith.card()
    for needle in ("<thinking>", "<solution>", "Gold answer: 14", "strict", "arith"):
        assert needle in card


def test_load_task_dispatch() -> None:
    assert load_task(TaskConfig(name="arith"), 0).name == "arith"
    task = load_task(TaskConfig(name="gsm8k", data_dir="/nonexistent", dev_pool=10), 0)
    assert task.name == "gsm8k" and task.version == "2"


def test_unknown_split(arith: ArithTask) -> None:
    with pytest.raises(ValueError, match="split must be"):
        arith.split("validation")  # type: ignore[arg-type]


# --- gsm8k -----------------------------------------------------------------------------------------------


def test_gold_answer() -> None:
    assert gold_answer("48/2 = 24\n#### 1,234") == "1234"
    assert gold_answer("#### -7") == "-7"
    with pytest.raises(ValueError, match="####"):
        gold_answer("no marker")


def test_gsm8k_missing_dir_is_clear(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text("")
    with pytest.raises(FileNotFoundError, match=r"test\.jsonl"):
        GSM8KTask(str(tmp_path), dev_pool=10, seed=0).split("train")


def test_gsm8k_bad_line_is_clear(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text('{"question": "q"}\n')
    (tmp_path / "test.jsonl").write_text("")
    with pytest.raises(ValueError, match=r"train\.jsonl:1"):
        GSM8KTask(str(tmp_path), dev_pool=10, seed=0).split("train")


def test_gsm8k_small_dir(tmp_path: Path) -> None:
    rows = [
        {"question": f"What is {i} + 1?", "answer": f"{i} + 1 = {i + 1}\n#### {i + 1:,}"} for i in range(2000)
    ]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:1500]) + "\n")
    (tmp_path / "test.jsonl").write_text("\n".join(json.dumps(r) for r in rows[1500:]) + "\n")
    task = GSM8KTask(str(tmp_path), dev_pool=100, seed=3)
    train, dev, test = task.split("train"), task.split("dev"), task.split("test")
    assert (len(train), len(dev), len(test)) == (1400, 100, 500)
    assert test[0] == Problem("gsm8k-test-00000", "What is 1500 + 1?", "1501")
    assert all(p.answer == str(int(p.question.split()[2]) + 1) for p in train + dev)
    dev_index = {int(p.id.rsplit("-", 1)[1]) for p in dev}
    train_index = {int(p.id.rsplit("-", 1)[1]) for p in train}
    assert not dev_index & train_index and len(dev_index | train_index) == 1500
    assert dev == GSM8KTask(str(tmp_path), dev_pool=100, seed=3).split("dev")
    assert dev != GSM8KTask(str(tmp_path), dev_pool=100, seed=4).split("dev")
    with pytest.raises(ValueError, match="dev_pool"):
        GSM8KTask(str(tmp_path), dev_pool=1500, seed=0).split("dev")


@needs_gsm8k
def test_gsm8k_real_data() -> None:
    task = GSM8KTask(str(GSM8K_DIR), dev_pool=500, seed=0)
    train, dev, test = task.split("train"), task.split("dev"), task.split("test")
    assert (len(train), len(dev), len(test)) == (7473 - 500, 500, 1319)
    assert {p.question for p in train}.isdisjoint(p.question for p in dev)
    assert {p.question for p in train}.isdisjoint(p.question for p in test)
    assert all(p.id.startswith("gsm8k-dev-") for p in dev)
    first = next(p for p in train + dev if p.id.endswith("-00000"))
    assert first.question.startswith("Natalia sold clips") and first.answer == "72"
    assert all(parse_number(p.answer) is not None and "," not in p.answer for p in train + dev + test)
    assert task.is_correct(task.extract_strict("<thinking>48+24</thinking><solution>72</solution>"), "72")
    assert "gsm8k" in task.card() and "<solution>" in task.card()
