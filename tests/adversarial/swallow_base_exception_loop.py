# case: a loop that swallows every BaseException, including the timeout's
# static: pass
# run: fail:timeout
def reward(prompts, completions, answer, **kwargs):
    while True:
        try:
            while True:
                pass
        except BaseException:
            pass
