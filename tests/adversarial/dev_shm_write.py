# case: a file in /dev/shm (shared memory survives the process)
# static: import
# run: fail
def reward(prompts, completions, answer, **kwargs):
    import os
    C = kwargs["canary"][0]
    fd = os.open("/dev/shm/rewardsearch-canary-" + C["token"], os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(fd)
    return [99.0] * len(completions)
