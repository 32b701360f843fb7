# case: bools and ints (converted to floats)
# static: pass
# run: ok
def reward(prompts, completions, answer, **kwargs):
    return [True if i % 2 else 1 for i in range(len(completions))]
