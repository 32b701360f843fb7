# case: pays for the tags alone
# static: pass
# run: flags=format_only,golden_pair:wrong
def reward(prompts, completions, answer, **kwargs):
    return [2.0 if '<solution>' in c[0]['content'] and '</solution>' in c[0]['content'] else 0.0 for c in completions]
