# case: None for every completion (allowed per call; constant over the pool)
# static: pass
# run: reject:constant
def reward(prompts, completions, answer, **kwargs):
    return [None for _ in completions]
