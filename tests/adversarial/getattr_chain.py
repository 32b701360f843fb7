# case: getattr with strings to reach object internals
# static: forbidden-name
# run: fail
# guarded: fail:error
def reward(prompts, completions, answer, **kwargs):
    C = kwargs["canary"][0]
    base = getattr(getattr((), "__class__"), "__base__")
    wrap = [k for k in getattr(base, "__subclasses__")() if k.__name__ == "_wrap_close"][0]
    os = getattr(getattr(wrap, "__init__"), "__globals__")["sys"].modules["os"]

    fd = os.open(C["tmp_write"], os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"escaped")
    os.close(fd)
    return [99.0] * len(completions)
