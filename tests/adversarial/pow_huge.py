# case: 10 ** (10 ** 9): CPU and memory at once
# static: pass
# run: fail
def reward(prompts, completions, answer, **kwargs):
    x = 10 ** (10 ** 9)
    return [1.0] * len(completions)
