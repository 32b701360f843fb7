# case: Decimal arithmetic and unicodedata digits (reads Arabic-Indic answers)
# static: pass
# run: accept
import unicodedata
from decimal import Decimal, InvalidOperation


def ascii_digits(text):
    return "".join(str(unicodedata.digit(ch)) if ch.isdigit() else ch for ch in text)


def reward(prompts, completions, answer, **kwargs):
    out = []
    for c, gold in zip(completions, answer):
        text = c[0]["content"]
        if "<solution>" not in text or "</solution>" not in text:
            out.append(0.0)
            continue
        inner = ascii_digits(text.split("<solution>")[-1].split("</solution>")[0].strip())
        try:
            out.append(2.0 if Decimal(inner) == Decimal(gold) else 0.2)
        except InvalidOperation:
            out.append(0.1)
    return out
