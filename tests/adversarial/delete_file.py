# case: deleting a file in a world-writable directory
# static: import
# run: fail
def reward(prompts, completions, answer, **kwargs):
    import os
    C = kwargs["canary"][0]
    os.unlink(C["victim_file"])
    return [99.0] * len(completions)
