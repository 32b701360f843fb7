# case: ten million scores for a few completions
# static: pass
# run: fail:error
def reward(prompts, completions, answer, **kwargs):
    return [0.0] * 10_000_000
