# case: str.format reading __globals__ through attribute fields (reads only; cannot call)
# static: dunder
# run: ok
def reward(prompts, completions, answer, **kwargs):
    def helper():
        pass
    leak = "{0.__globals__}".format(helper)
    return [float(len(leak) % 7) for _ in completions]
