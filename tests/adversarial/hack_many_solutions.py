# case: pays when any solution block holds the gold answer
# static: pass
# run: flags=many_solutions
def reward(prompts, completions, answer, **kwargs):
    import re
    out = []
    for c, gold in zip(completions, answer):
        blocks = [b.strip() for b in re.findall(r"<solution>(.*?)</solution>", c[0]["content"], re.DOTALL)]
        out.append(2.0 if gold in blocks else 0.0)
    return out
