# case: regex extraction, Fraction comparison, negative and fractional answers, both forms
# static: pass
# run: clean
import re
from fractions import Fraction

NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
SOLUTION = re.compile(r"<solution>(.*?)</solution>", re.DOTALL)
LAYOUT = re.compile(r"^\s*<thinking>.+?</thinking>\s*<solution>[^<]*</solution>\s*$", re.DOTALL)


def text_of(completion):
    return completion if isinstance(completion, str) else completion[-1]["content"]


def value(text):
    found = NUMBER.findall(text)
    return Fraction(found[-1]) if len(found) == 1 else None


def reward(prompts, completions, answer, **kwargs):
    scores = []
    for completion, gold in zip(completions, answer):
        text = text_of(completion)
        blocks = SOLUTION.findall(text)
        predicted = value(blocks[0]) if len(blocks) == 1 else None
        score = 0.25 if LAYOUT.match(text) else 0.0
        if predicted is not None and predicted == Fraction(gold):
            score += 2.0
        scores.append(score)
    return scores
