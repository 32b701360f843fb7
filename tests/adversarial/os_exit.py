# case: os._exit(0) without replying
# static: import
# run: fail
# os: fail:crash
def reward(prompts, completions, answer, **kwargs):
    import os
    os._exit(0)
