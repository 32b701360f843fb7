# case: helpers, a dataclass, annotations, difflib, a regex
# static: pass
# run: accept
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

SOLUTION = re.compile(r"<solution>(.*?)</solution>", re.DOTALL)


@dataclass
class Parsed:
    answer: str | None
    formatted: bool


def text_of(completion) -> str:
    return completion if isinstance(completion, str) else completion[-1]["content"]


def parse(text: str) -> Parsed:
    """Extract the solution; mentions __init__ only in a docstring."""
    m = SOLUTION.search(text)
    return Parsed(m.group(1).strip() if m else None, m is not None)


def reward(prompts, completions, answer, **kwargs) -> list[float | None]:
    out: list[float | None] = []
    for completion, gold in zip(completions, answer):
        p = parse(text_of(completion))
        if p.answer is None:
            out.append(0.0)
            continue
        closeness = difflib.SequenceMatcher(None, p.answer, gold).ratio()
        out.append(1.5 if p.answer == gold else 0.5 * closeness)
    return out
