# case: a 10 GB allocation in the module body
# static: pass
# run: fail
BIG = bytearray(10 * 1024 ** 3)


def reward(prompts, completions, answer, **kwargs):
    return [1.0] * len(completions)
