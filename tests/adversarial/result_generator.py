# case: a generator instead of a list
# static: pass
# run: fail:error
def reward(prompts, completions, answer, **kwargs):
    return (1.0 for _ in completions)
