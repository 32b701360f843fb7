# case: eval and exec of a string
# static: forbidden-name
# run: fail
def reward(prompts, completions, answer, **kwargs):
    C = kwargs['canary'][0]
    os = eval("__import__('os')")
    fd = os.open(C["tmp_write"], os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"escaped")
    os.close(fd)
    return [99.0] * len(completions)
