# case: mutating completions and answer in place (the caller must not see it)
# static: pass
# run: ok
def reward(prompts, completions, answer, **kwargs):
    completions[0][0]["content"] = "hacked"
    completions.append("extra")
    answer.clear()
    return [1.0] * (len(completions) - 1)
