def close_answer(text: str, gold: str) -> float:
    """Full credit for the correct number in {answer_part}, partial credit when it is close."""
    import re

    answer = _solution(text[:20000])
    if answer is None or any(text.count(marker) != 1 for marker in {markers}):
        return 0.0
    numbers = re.findall(r"-?\d+(?:\.\d+)?", answer)
    gold_numbers = re.findall(r"-?\d+(?:\.\d+)?", gold)
    if not numbers or not gold_numbers:
        return 0.0
    guess, target = float(numbers[-1]), float(gold_numbers[-1])
    error = abs(guess - target) / max(1.0, abs(target))
    return 1.0 if error == 0 else 0.5 / (1.0 + error)
