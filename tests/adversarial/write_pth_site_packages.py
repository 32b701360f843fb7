# case: dropping a .pth file into site-packages (runs at every Python start)
# static: import
# run: fail
def reward(prompts, completions, answer, **kwargs):
    import os
    C = kwargs["canary"][0]
    fd = os.open(os.path.join(C["site"], "zzz_evil.pth"), os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"import os; os.system('id')\n")
    return [99.0] * len(completions)
