# case: renaming a file in a world-writable directory
# static: import
# run: fail
def reward(prompts, completions, answer, **kwargs):
    import os
    C = kwargs["canary"][0]
    os.rename(C["victim_file"], C["victim_file"] + ".moved")
    return [99.0] * len(completions)
