# case: scores beyond the bound (|r| <= 100)
# static: pass
# run: fail:error
def reward(prompts, completions, answer, **kwargs):
    return [1000.0] * len(completions)
