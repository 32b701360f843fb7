# case: reading /proc/<pid>/mem of the victim
# static: import
# run: fail
def reward(prompts, completions, answer, **kwargs):
    import os
    C = kwargs["canary"][0]
    with open(f"/proc/{C['victim_pid']}/maps") as f:
        start = int(f.readline().split("-")[0], 16)
    fd = os.open(f"/proc/{C['victim_pid']}/mem", os.O_RDONLY)
    data = os.pread(fd, 16, start)
    return [99.0 if data else 0.0] * len(completions)
