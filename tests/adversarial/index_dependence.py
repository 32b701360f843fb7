# case: scores from the position in the batch
# static: pass
# run: reject:index dependence
def reward(prompts, completions, answer, **kwargs):
    return [float(i % 3) for i in range(len(completions))]
