# case: an infinite loop in the module body
# static: pass
# run: fail
while True:
    pass


def reward(prompts, completions, answer, **kwargs):
    return [1.0] * len(completions)
