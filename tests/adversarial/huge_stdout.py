# case: 50 MB printed to stdout (must not corrupt the protocol)
# static: pass
# run: ok
def reward(prompts, completions, answer, **kwargs):
    for _ in range(50):
        print('x' * 1_000_000)
    return [1.0] * len(completions)
