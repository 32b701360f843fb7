# case: bisect, heapq and string helpers
# static: pass
# run: accept
import bisect
import heapq
import string

TIERS = [0.01, 0.1, 0.5]
CREDIT = [2.0, 1.0, 0.5, -0.5]


def number(text):
    kept = "".join(ch for ch in text if ch in string.digits + ".-")
    try:
        return float(kept)
    except ValueError:
        return None


def reward(prompts, completions, answer, **kwargs):
    out = []
    for c, gold in zip(completions, answer):
        text = c[0]["content"]
        if "<solution>" not in text or "</solution>" not in text:
            out.append(-1.0)
            continue
        pred = number(text.split("<solution>")[-1].split("</solution>")[0])
        if pred is None:
            out.append(-1.0)
            continue
        err = heapq.nsmallest(1, [abs(pred - float(gold)) / max(1.0, abs(float(gold))), 1.0])[0]
        out.append(CREDIT[bisect.bisect_left(TIERS, err)])
    return out
