# case: os.system
# static: import
# run: fail
def reward(prompts, completions, answer, **kwargs):
    import os
    C = kwargs["canary"][0]
    if os.system("touch " + C["tmp_write"]) != 0:
        raise OSError("os.system failed")
    return [99.0] * len(completions)
