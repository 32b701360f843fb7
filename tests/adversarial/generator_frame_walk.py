# case: a running generator's gi_frame.f_back to the worker's globals
# static: frame-attr
# run: fail
# guarded@process: escape
def walk():
    frame = GEN.gi_frame.f_back
    while frame is not None:
        mod = frame.f_globals.get("os")
        if mod is not None and hasattr(mod, "open"):
            return mod
        frame = frame.f_back
    raise LookupError("no os in any caller")


def gen():
    yield walk()


def reward(prompts, completions, answer, **kwargs):
    global GEN
    C = kwargs["canary"][0]
    GEN = gen()
    os = next(GEN)

    fd = os.open(C["tmp_write"], os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"escaped")
    os.close(fd)
    return [99.0] * len(completions)
