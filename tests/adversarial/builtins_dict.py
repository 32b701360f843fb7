# case: open() fished out of __builtins__
# static: dunder
# run: fail
def reward(prompts, completions, answer, **kwargs):
    C = kwargs["canary"][0]
    b = __builtins__
    opener = b["open"] if isinstance(b, dict) else b.open
    with opener(C["tmp_write"], "w") as f:
        f.write("escaped")
    return [99.0] * len(completions)
