# case: closing every descriptor, then spinning
# static: import
# run: fail
# os: fail:timeout
def reward(prompts, completions, answer, **kwargs):
    import os
    os.closerange(3, 4096)
    while True:
        pass
