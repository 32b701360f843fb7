# case: a module-level counter bumped by every call (each call must see a fresh module)
# static: pass
# run: clean
import re

CALLS = [0]
SOLUTION = re.compile(r"<solution>(.*?)</solution>", re.DOTALL)


def reward(prompts, completions, answer, **kwargs):
    CALLS[0] += 1
    scores = []
    for c, gold in zip(completions, answer):
        m = SOLUTION.search(c[0]["content"])
        correct = m is not None and m.group(1).strip() == gold
        scores.append(CALLS[0] + (2.0 if correct else 0.0))
    return scores
