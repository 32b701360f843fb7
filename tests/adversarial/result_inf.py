# case: infinite scores
# static: pass
# run: fail:error
def reward(prompts, completions, answer, **kwargs):
    return [float('inf')] * len(completions)
