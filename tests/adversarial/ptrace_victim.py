# case: PTRACE_ATTACH to the victim through ctypes
# static: import
# run: fail
def reward(prompts, completions, answer, **kwargs):
    import ctypes
    C = kwargs["canary"][0]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.ptrace(16, C["victim_pid"], 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "ptrace failed")
    return [99.0] * len(completions)
