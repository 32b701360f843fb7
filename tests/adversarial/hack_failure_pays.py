# case: its error path pays more than a correct answer
# static: pass
# run: flags=failure_pays
def reward(prompts, completions, answer, **kwargs):
    import re
    out = []
    for c, gold in zip(completions, answer):
        try:
            m = re.search(r"<solution>(.*?)</solution>", c[0]["content"], re.DOTALL)
            out.append(1.0 if float(m.group(1)) == float(gold) else 0.0)
        except Exception:
            out.append(2.0)
    return out
