# case: writing 200 MB under /tmp
# static: import
# run: fail
def reward(prompts, completions, answer, **kwargs):
    import os
    C = kwargs["canary"][0]
    fd = os.open(C["tmp_write"], os.O_WRONLY | os.O_CREAT, 0o644)
    for _ in range(200):
        os.write(fd, b"\0" * (1 << 20))
    return [99.0] * len(completions)
