# case: socket(2) through ctypes, past any Python-level check
# static: import
# run: fail
def reward(prompts, completions, answer, **kwargs):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.socket(2, 1, 0)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "socket failed")
    return [99.0] * len(completions)
