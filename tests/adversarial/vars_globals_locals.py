# case: globals() to reach the real builtins' open
# static: forbidden-name
# run: fail
# guarded: fail:error
def reward(prompts, completions, answer, **kwargs):
    C = kwargs["canary"][0]
    opener = globals()["__builtins__"]["open"]
    with opener(C["tmp_write"], "w") as f:
        f.write("escaped")
    return [99.0] * len(completions)
