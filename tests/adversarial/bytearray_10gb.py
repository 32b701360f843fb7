# case: a 10 GB bytearray
# static: pass
# run: fail:error
def reward(prompts, completions, answer, **kwargs):
    x = bytearray(10 * 1024 ** 3)
    return [1.0] * len(completions)
