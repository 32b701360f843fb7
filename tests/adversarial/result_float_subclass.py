# case: a float subclass with its own __float__ (exact types only)
# static: pass
# run: fail:error
def reward(prompts, completions, answer, **kwargs):
    class Sneaky(float):
        def __float__(self):
            return 1e308


    return [Sneaky(1.0) for _ in completions]
