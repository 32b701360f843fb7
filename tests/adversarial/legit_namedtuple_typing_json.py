# case: typing.NamedTuple, Optional, json, itertools, functools
# static: pass
# run: accept
import functools
import itertools
import json
from typing import NamedTuple, Optional


class Verdict(NamedTuple):
    answer: Optional[str]
    tags: int


@functools.lru_cache(maxsize=256)
def verdict(text: str) -> Verdict:
    tags = sum(text.count(t) for t in ("<thinking>", "</thinking>", "<solution>", "</solution>"))
    if "<solution>" in text and "</solution>" in text:
        return Verdict(text.split("<solution>")[-1].split("</solution>")[0].strip(), tags)
    return Verdict(None, tags)


WEIGHTS = json.loads('{"right": 2.0, "tag": 0.1}')


def reward(prompts, completions, answer, **kwargs):
    out = []
    for c, gold in itertools.zip_longest(completions, answer):
        v = verdict(c[0]["content"])
        out.append((WEIGHTS["right"] if v.answer == gold else 0.0) + WEIGHTS["tag"] * min(v.tags, 4))
    return out
