"""`arith`: seeded, procedurally generated arithmetic word problems (the offline testbed).

A problem is a start value and 1-4 operations (add, sub, mul, div), told as a short story in one of three
styles (a person's things, a person's money, a number puzzle) with varied phrasings. Every intermediate value
and every answer is a positive integer: subtraction never goes below 1, and division only ever divides by a
divisor of the current value (a leading division builds its dividend as divisor * quotient).

Splits are drawn from independent streams derived from the seed, test first, then dev, then train, each
skipping question texts already taken; so no question appears in two splits, and the test split does not
change when the train or dev sizes do.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Literal

from rewardsearch.config import ArithConfig, TaskConfig
from rewardsearch.tasks import NumericTask, Problem

Op = Literal["add", "sub", "mul", "div"]
_SYMBOL: dict[str, str] = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
_SMALL = 12  # largest multiplier/divisor: products stay readable for small models


@dataclass(frozen=True)
class ArithItem:
    """One generated problem with the arithmetic behind its text."""

    question: str
    answer: int
    start: int
    steps: tuple[tuple[Op, int], ...]

    @property
    def expression(self) -> str:
        """The computation as Python-evaluable text, e.g. "((12 + 5) - 3)"."""
        expr = str(self.start)
        for op, n in self.steps:
            expr = f"({expr} {_SYMBOL[op]} {n})"
        return expr


# --- numbers -------------------------------------------------------------------------------------------


def _draw_numbers(rng: random.Random, ops: list[Op], max_operand: int) -> tuple[int, list[int]] | None:
    """Start value and operands for `ops` keeping every value a positive integer; None if this draw fails."""
    small = min(_SMALL, max_operand)
    # Leading divisions have nothing to divide yet: build the start as quotient * their divisors.
    lead = 0
    while lead < len(ops) and ops[lead] == "div":
        lead += 1
    lead_divisors = [rng.randint(2, small) for _ in range(lead)]
    start = rng.randint(2, max_operand)
    for d in lead_divisors:
        start *= d
    value, operands = start, []
    for i, op in enumerate(ops):
        if i < lead:
            n = lead_divisors[i]
        elif op == "add":  # operands of add/sub start at 2: "1 more apples" reads badly
            n = rng.randint(2, max_operand)
        elif op == "sub":
            if value < 3:
                return None
            n = rng.randint(2, min(max_operand, value - 1))
        elif op == "mul":
            n = rng.randint(2, small)
        else:
            divisors = [d for d in range(2, min(small, value) + 1) if value % d == 0]
            if not divisors:
                return None
            n = rng.choice(divisors)
        value = _apply(op, value, n)
        operands.append(n)
    return start, operands


def _apply(op: Op, value: int, n: int) -> int:
    if op == "add":
        return value + n
    if op == "sub":
        return value - n
    if op == "mul":
        return value * n
    assert value % n == 0, "division must be exact"
    return value // n


# --- words ---------------------------------------------------------------------------------------------

_PEOPLE: list[tuple[str, str]] = [
    ("Sam", "he"), ("Maya", "she"), ("Leo", "he"), ("Nora", "she"), ("Omar", "he"), ("Priya", "she"),
    ("Ben", "he"), ("Lucia", "she"), ("Kenji", "he"), ("Amara", "she"), ("Tom", "he"), ("Ivy", "she"),
    ("Diego", "he"), ("Hana", "she"), ("Felix", "he"), ("Zoe", "she"),
]  # fmt: skip
_PRONOUNS = {
    "he": {"he": "he", "him": "him", "his": "his", "self": "himself"},
    "she": {"he": "she", "him": "her", "his": "her", "self": "herself"},
}
_ITEMS = [
    "apples", "marbles", "stickers", "baseball cards", "books", "pencils", "seashells", "cookies",
    "stamps", "crayons", "toy cars", "beads", "oranges", "balloons", "comics", "cupcakes",
]  # fmt: skip
_THINGS = ["lunch", "a book", "a movie ticket", "snacks", "a board game", "school supplies"]

# Per style: opening sentences, one phrase list per operation, closing questions. Each phrase names its
# operation in words and holds exactly one number ({n}); tests re-solve the text from these words.
_STYLES: dict[str, dict[str, list[str]]] = {
    "things": {
        "start": ["{name} has {n} {items}.", "{name} owns {n} {items}.", "{name} starts the day with {n} {items}."],
        "add": ["{he} buys {n} more", "{he} finds {n} more {items}", "a friend gives {him} {n} more",
                "{he} gets {n} more {items} as a present"],
        "sub": ["{he} gives away {n}", "{he} gives {n} {items} to a friend", "{he} loses {n} of them",
                "{he} sells {n} of {his} {items}"],
        "mul": ["{he} ends up with {n} times as many {items} as before",
                "the number of {items} {he} has is multiplied by {n}",
                "{his} pile of {items} grows to {n} times its size"],
        "div": ["{he} splits {his} {items} into {n} equal groups and keeps only one group",
                "{he} shares {his} {items} equally among {n} people, {self} included, and keeps one share"],
        "question": ["How many {items} does {name} have now?", "How many {items} does {name} have in the end?",
                     "How many {items} does {name} end up with?"],
    },
    "money": {
        "start": ["{name} has ${n}.", "{name} has ${n} in {his} wallet.", "{name} has saved ${n}."],
        "add": ["{he} earns ${n} more", "{he} receives ${n} for {his} birthday", "{he} earns ${n} doing chores"],
        "sub": ["{he} spends ${n} on {thing}", "{he} pays ${n} for {thing}", "{he} spends ${n}"],
        "mul": ["{his} savings grow to {n} times as much", "{he} ends up with {n} times as much money as before"],
        "div": ["{he} splits {his} money equally into {n} envelopes and keeps one envelope",
                "{he} divides {his} money equally among {n} people, {self} included, and keeps one share"],
        "question": ["How many dollars does {name} have now?", "How much money, in dollars, does {name} have now?"],
    },
    "puzzle": {
        "start": ["Start with {n}.", "Take the number {n}.", "Think of the number {n}."],
        "add": ["add {n}", "add {n} to it", "increase it by {n}"],
        "sub": ["subtract {n}", "take away {n}", "decrease it by {n}"],
        "mul": ["multiply by {n}", "multiply the result by {n}", "make it {n} times as large"],
        "div": ["divide by {n}", "divide the result by {n}", "split it into {n} equal parts and keep one part"],
        "question": ["What number do you get?", "What is the result?", "What number do you end up with?"],
    },
}  # fmt: skip
_CONNECTORS = ["", "Then ", "After that, ", "Next, ", "Later, "]


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _render(rng: random.Random, start: int, ops: list[Op], operands: list[int]) -> str:
    style_name = rng.choice(sorted(_STYLES))
    style = _STYLES[style_name]
    name, pronoun = rng.choice(_PEOPLE)
    words = {"name": name, "items": rng.choice(_ITEMS), **_PRONOUNS[pronoun]}

    def fill(template: str, n: int | None = None) -> str:
        return template.format(n=n, thing=rng.choice(_THINGS), **words)

    opening = fill(rng.choice(style["start"]), start)
    phrases = [fill(rng.choice(style[op]), n) for op, n in zip(ops, operands, strict=True)]
    if style_name == "puzzle":
        body = _cap(", then ".join(phrases)) + "."
    else:
        body = " ".join(_cap(rng.choice(_CONNECTORS) + p) + "." for p in phrases)
    return f"{opening} {body} {fill(rng.choice(style['question']))}"


# --- problems and splits ---------------------------------------------------------------------------------


def make_item(rng: random.Random, n_steps: int, ops: list[Op], max_operand: int) -> ArithItem:
    """One problem of `n_steps` operations drawn from `ops`."""
    for _ in range(1000):
        chosen: list[Op] = [rng.choice(ops) for _ in range(n_steps)]
        drawn = _draw_numbers(rng, chosen, max_operand)
        if drawn is None:
            continue  # e.g. a prime before a division: draw again
        start, operands = drawn
        value = start
        for op, n in zip(chosen, operands, strict=True):
            value = _apply(op, value, n)
        question = _render(rng, start, chosen, operands)
        return ArithItem(question, value, start, tuple(zip(chosen, operands, strict=True)))
    raise ValueError(
        f"arith: cannot build a {n_steps}-step problem from ops={ops} with max_operand={max_operand}"
    )


def _stream(seed: int, split: str) -> random.Random:
    # Independent stream per split, derived by hashing so that nearby seeds do not share draws.
    digest = hashlib.sha256(f"rewardsearch/arith/{seed}/{split}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class ArithTask(NumericTask):
    """Seeded arithmetic word problems; `split()` gives fixed, pairwise disjoint train/dev/test lists."""

    name = "arith"
    version = "2"  # 2: the widened number notation and the bracketed-aside rule of answers.py

    def __init__(self, cfg: ArithConfig, seed: int) -> None:
        self.cfg = cfg
        self.seed = seed
        self._splits: dict[str, list[Problem]] | None = None
        self._items: dict[str, ArithItem] = {}

    @classmethod
    def from_config(cls, cfg: TaskConfig, seed: int) -> ArithTask:
        task = cls(cfg.arith, seed)
        task.configure(cfg)
        return task

    def item(self, problem_id: str) -> ArithItem:
        """The arithmetic behind a problem (start, steps, expression) by its id."""
        if self._splits is None:
            self._splits = self._build()
        return self._items[problem_id]

    def _build(self) -> dict[str, list[Problem]]:
        sizes = {"test": self.cfg.test_size, "dev": self.cfg.dev_size, "train": self.cfg.train_size}
        steps = sorted(self.cfg.steps_mix)
        weights = [self.cfg.steps_mix[k] for k in steps]
        ops: list[Op] = list(self.cfg.ops)
        seen: set[str] = set()
        splits: dict[str, list[Problem]] = {}
        for split, size in sizes.items():  # test first: it must not depend on the other sizes
            rng = _stream(self.seed, split)
            problems: list[Problem] = []
            budget = 50 * size + 1000
            while len(problems) < size:
                budget -= 1
                if budget < 0:
                    raise ValueError(
                        f"arith: only {len(problems)} distinct {split} problems found, {size} asked; "
                        "raise task.arith.max_operand or lower the split sizes"
                    )
                item = make_item(rng, rng.choices(steps, weights)[0], ops, self.cfg.max_operand)
                if item.question in seen:
                    continue
                seen.add(item.question)
                pid = f"arith-{split}-{len(problems):05d}"
                self._items[pid] = item
                problems.append(Problem(pid, item.question, str(item.answer)))
            splits[split] = problems
        return splits

    def _describe(self) -> tuple[str, str, Problem]:
        mix = ", ".join(f"{k} step(s): {v:g}" for k, v in sorted(self.cfg.steps_mix.items()))
        what = (
            "Short arithmetic word problems, generated procedurally from a seed. Each chains 1-4 operations "
            f"({', '.join(self.cfg.ops)}) on whole numbers up to {self.cfg.max_operand} (share by number of "
            f"operations: {mix}). Divisions always come out whole and no value goes below 1."
        )
        example = Problem(
            "arith-example",
            "Sam has 12 apples. He buys 5 more. Then he gives away 3. How many apples does Sam have now?",
            "14",
        )
        return what, "a positive integer, written without units (e.g. 14).", example
