import re

SOLUTION = re.compile(r"<solution>(.*?)</solution>", re.DOTALL)
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def text_of(completion):
    if isinstance(completion, str):
        return completion
    return completion[-1]["content"]


def close_answer_in_solution(prompts, completions, answer, **kwargs):
    scores = []
    for completion, gold in zip(completions, answer):
        blocks = SOLUTION.findall(text_of(completion)[:20000])
        numbers = NUMBER.findall(blocks[0]) if len(blocks) == 1 else []
        gold_numbers = NUMBER.findall(str(gold))
        if not numbers or not gold_numbers:
            scores.append(0.0)
            continue
        guess, target = float(numbers[-1]), float(gold_numbers[-1])
        error = abs(guess - target) / max(1.0, abs(target))
        scores.append(1.0 if error == 0 else max(0.0, 0.5 - error))
    return scores
