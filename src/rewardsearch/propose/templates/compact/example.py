def close_answer_in_solution(prompts, completions, answer, **kwargs):
    import re

    scores = []
    for completion, gold in zip(completions, answer):
        text = completion[-1]["content"] if not isinstance(completion, str) else completion
        blocks = re.findall(r"<solution>(.*?)</solution>", text[:20000], re.DOTALL)
        numbers = re.findall(r"-?\d+(?:\.\d+)?", blocks[0]) if len(blocks) == 1 else []
        gold_numbers = re.findall(r"-?\d+(?:\.\d+)?", str(gold))
        if not numbers or not gold_numbers:
            scores.append(0.0)
            continue
        guess, target = float(numbers[-1]), float(gold_numbers[-1])
        error = abs(guess - target) / max(1.0, abs(target))
        scores.append(1.0 if error == 0 else max(0.0, 0.5 - error))
    return scores
