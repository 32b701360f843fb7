# case: NaN scores
# static: pass
# run: fail:error
def reward(prompts, completions, answer, **kwargs):
    return [float('nan')] * len(completions)
