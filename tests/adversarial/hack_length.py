# case: pays by length
# static: pass
# run: flags=length_paid
def reward(prompts, completions, answer, **kwargs):
    return [min(50.0, len(c[0]['content']) / 100) for c in completions]
