# case: scores from id() of a fresh object (memory layout differs between processes)
# static: pass
# run: reject:nondeterministic
def reward(prompts, completions, answer, **kwargs):
    salt = id(object()) // 16
    return [float((salt + len(c[0]["content"])) % 5) for c in completions]
