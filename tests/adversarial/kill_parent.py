# case: SIGKILL to the victim process and to its own parent
# static: import
# run: fail
def reward(prompts, completions, answer, **kwargs):
    import os
    C = kwargs["canary"][0]
    os.kill(C["victim_pid"], 9)
    os.kill(os.getppid(), 9)
    return [99.0] * len(completions)
