# case: scores from the clock
# static: import
# run: reject
# os: reject:nondeterministic
def reward(prompts, completions, answer, **kwargs):
    import time
    return [float(time.perf_counter_ns() % 1000) / 100 for _ in completions]
