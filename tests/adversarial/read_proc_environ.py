# case: reading /proc/<pid>/environ of the victim (holding a secret) and of the driver
# static: import
# run: fail
def reward(prompts, completions, answer, **kwargs):
    import os
    C = kwargs["canary"][0]
    found = False
    for pid in (C["victim_pid"], C["driver_pid"]):
        fd = os.open(f"/proc/{pid}/environ", os.O_RDONLY)  # a denial raises: the call fails
        data = os.read(fd, 1 << 20)
        found = found or C["secret"].encode() in data or b"PATH=" in data
    return [99.0 if found else 0.0] * len(completions)
