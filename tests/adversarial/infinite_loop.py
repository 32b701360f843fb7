# case: a loop that never ends
# static: pass
# run: fail:timeout
def reward(prompts, completions, answer, **kwargs):
    while True:
        pass
