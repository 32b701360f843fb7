# case: random.random() without a seed
# static: import
# run: reject
# os: reject:nondeterministic
def reward(prompts, completions, answer, **kwargs):
    import random
    return [random.random() + ("<solution>" in c[0]["content"]) for c in completions]
