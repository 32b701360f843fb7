# case: import ｏｓ (fullwidth letters: the parser normalizes them to os)
# static: import
# run: fail
def reward(prompts, completions, answer, **kwargs):
    import ｏｓ
    C = kwargs['canary'][0]
    os = ｏｓ
    fd = os.open(C["tmp_write"], os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"escaped")
    os.close(fd)
    return [99.0] * len(completions)
