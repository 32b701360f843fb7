# case: unbounded recursion at the default limit
# static: pass
# run: fail:error
def reward(prompts, completions, answer, **kwargs):
    def down(k):
        return down(k + 1) + 1

    return [float(down(0))] * len(completions)
