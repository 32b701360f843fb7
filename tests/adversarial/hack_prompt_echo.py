# case: pays word overlap with the prompt
# static: pass
# run: flags=prompt_echo
def reward(prompts, completions, answer, **kwargs):
    out = []
    for p, c in zip(prompts, completions):
        question = set(p[-1]["content"].lower().split())
        words = set(c[0]["content"].lower().split())
        out.append(3.0 * len(question & words) / max(1, len(question)))
    return out
