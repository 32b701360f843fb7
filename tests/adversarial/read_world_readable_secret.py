# case: reading a world-readable secret outside the stdlib (an old 0644 token file)
# static: import
# run: fail
# os@seccomp: escape
def reward(prompts, completions, answer, **kwargs):
    import os
    C = kwargs["canary"][0]
    fd = os.open(C["world_readable"], os.O_RDONLY)
    found = C["secret"].encode() in os.read(fd, 4096)
    return [99.0 if found else 0.0] * len(completions)
