import re

NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def last_number_matches(prompts, completions, answer, **kwargs):
    scores = []
    for completion, gold in zip(completions, answer):
        text = completion[0]["content"]
        numbers = NUMBER.findall(text)
        if not numbers:
            scores.append(0.0)
        elif numbers[-1] == gold.strip():
            scores.append(1.0)
        else:
            scores.append(0.2)
    return scores
