# case: an exception's __traceback__.tb_frame.f_back to the worker's globals
# static: frame-attr
# run: fail
# guarded@process: escape
def reward(prompts, completions, answer, **kwargs):
    C = kwargs["canary"][0]
    try:
        1 / 0
    except ZeroDivisionError as exc:
        frame = exc.__traceback__.tb_frame
    os = None
    while frame is not None and os is None:
        os = frame.f_globals.get("os")
        frame = frame.f_back

    fd = os.open(C["tmp_write"], os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"escaped")
    os.close(fd)
    return [99.0] * len(completions)
