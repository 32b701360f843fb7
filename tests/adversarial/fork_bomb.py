# case: os.fork() in a loop
# static: import
# run: fail
def reward(prompts, completions, answer, **kwargs):
    import os
    while True:
        os.fork()
