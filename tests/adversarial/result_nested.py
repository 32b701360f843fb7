# case: lists instead of numbers
# static: pass
# run: fail:error
def reward(prompts, completions, answer, **kwargs):
    return [[1.0]] * len(completions)
