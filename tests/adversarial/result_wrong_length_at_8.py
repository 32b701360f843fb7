# case: one score too few, only in batches of 8
# static: pass
# run: reject:batch of 8
def reward(prompts, completions, answer, **kwargs):
    n = len(completions)
    return [float(len(c[0]["content"]) % 3) for c in completions][: n - 1 if n == 8 else n]
