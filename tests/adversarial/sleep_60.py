# case: time.sleep(60)
# static: import
# run: fail
# os: fail:timeout
def reward(prompts, completions, answer, **kwargs):
    import time
    time.sleep(60)
    return [1.0] * len(completions)
