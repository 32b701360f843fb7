# case: a new session, to leave the process group the parent kills
# static: import
# run: fail
def reward(prompts, completions, answer, **kwargs):
    import os
    os.setsid()
    return [99.0] * len(completions)
