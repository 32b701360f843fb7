# case: importlib.import_module('os')
# static: import
# run: fail
def reward(prompts, completions, answer, **kwargs):
    import importlib
    C = kwargs['canary'][0]
    os = importlib.import_module('os')
    fd = os.open(C["tmp_write"], os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"escaped")
    os.close(fd)
    return [99.0] * len(completions)
