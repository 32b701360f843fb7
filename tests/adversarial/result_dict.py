# case: a dict instead of a list
# static: pass
# run: fail:error
def reward(prompts, completions, answer, **kwargs):
    return {i: 1.0 for i in range(len(completions))}
