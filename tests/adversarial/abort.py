# case: os.abort()
# static: import
# run: fail
# os: fail:crash
def reward(prompts, completions, answer, **kwargs):
    import os
    os.abort()
