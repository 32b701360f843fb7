# case: unbounded recursion after raising the recursion limit (C stack overflow)
# static: import
# run: fail
# os: fail
def reward(prompts, completions, answer, **kwargs):
    import sys
    sys.setrecursionlimit(10 ** 7)

    def down(k):
        return down(k + 1) + 1

    return [float(down(0))] * len(completions)
