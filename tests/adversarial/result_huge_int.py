# case: an int too large for a float
# static: pass
# run: fail:error
def reward(prompts, completions, answer, **kwargs):
    return [10 ** 400] * len(completions)
