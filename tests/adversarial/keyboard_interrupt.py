# case: raise KeyboardInterrupt
# static: pass
# run: fail:error
def reward(prompts, completions, answer, **kwargs):
    raise KeyboardInterrupt
