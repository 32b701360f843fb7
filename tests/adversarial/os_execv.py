# case: replacing the process with a shell
# static: import
# run: fail
def reward(prompts, completions, answer, **kwargs):
    import os
    C = kwargs["canary"][0]
    os.execv("/bin/sh", ["sh", "-c", "touch " + C["tmp_write"]])
