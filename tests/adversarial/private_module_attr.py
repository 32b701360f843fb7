# case: collections._sys.modules (a private module attribute)
# static: private-attr
# run: fail
# guarded: fail:error
def reward(prompts, completions, answer, **kwargs):
    import collections
    C = kwargs['canary'][0]
    os = collections._sys.modules['os']
    fd = os.open(C["tmp_write"], os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"escaped")
    os.close(fd)
    return [99.0] * len(completions)
