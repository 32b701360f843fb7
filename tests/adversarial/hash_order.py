# case: scores from the iteration order of a set of strings (hash randomization)
# static: pass
# run: reject:nondeterministic
def reward(prompts, completions, answer, **kwargs):
    words = [f"word{k}" for k in range(24)]
    order = list(set(words))
    return [float(order.index(words[len(c[0]["content"]) % 24])) for c in completions]
