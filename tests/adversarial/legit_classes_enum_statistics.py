# case: a class hierarchy with dunder methods, an Enum, statistics
# static: pass
# run: accept
import enum
import statistics


class Grade(enum.Enum):
    NONE = 0
    FORMAT = 1
    RIGHT = 2


class Scorer:
    def __init__(self, weights):
        self.weights = weights

    def __call__(self, grade):
        return self.weights[grade]

    def __repr__(self):
        return f"Scorer({self.weights})"


class StrictScorer(Scorer):
    def __init__(self):
        super().__init__({Grade.NONE: 0.0, Grade.FORMAT: 0.5, Grade.RIGHT: 2.0})


SCORE = StrictScorer()


def grade(text, gold):
    if "<solution>" not in text or "</solution>" not in text:
        return Grade.NONE
    inner = text.split("<solution>", 1)[1].split("</solution>", 1)[0].strip()
    return Grade.RIGHT if inner == gold else Grade.FORMAT


def reward(prompts, completions, answer, **kwargs):
    raw = [SCORE(grade(c[0]["content"], g)) for c, g in zip(completions, answer)]
    centre = statistics.median(raw)
    return [r - 0.0 * centre for r in raw]
