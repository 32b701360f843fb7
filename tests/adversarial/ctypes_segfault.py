# case: a segfault through ctypes
# static: import
# run: fail
# os: fail:crash
def reward(prompts, completions, answer, **kwargs):
    import ctypes
    ctypes.string_at(0)
    return [1.0] * len(completions)
