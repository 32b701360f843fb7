# case: signal 0 to every process it may signal (kill(-1, 0))
# static: import
# run: fail
def reward(prompts, completions, answer, **kwargs):
    import os
    os.kill(-1, 0)
    return [99.0] * len(completions)
