# case: 20 MB of garbage into every descriptor
# static: import
# run: fail
# os: fail:output
def reward(prompts, completions, answer, **kwargs):
    import os
    junk = b"x" * (1 << 20)
    for fd in range(3, 64):
        try:
            for _ in range(20):
                os.write(fd, junk)
        except OSError:
            pass
    return [1.0] * len(completions)
