# case: one number for the whole batch
# static: pass
# run: fail:error
def reward(prompts, completions, answer, **kwargs):
    return 1.0
