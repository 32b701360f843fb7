# case: scores from id() of a fresh object (memory layout differs between processes)
# static: pass
# run: reject
def reward(prompts, completions, answer, **kwargs):
    salt = id(object()) % 99991  # the whole address: two workers agree about once in 10**5
    return [(salt + len(c[0]["content"])) % 99991 / 1000.0 for c in completions]
