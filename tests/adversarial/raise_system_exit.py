# case: raise SystemExit (no import needed)
# static: pass
# run: fail:error
def reward(prompts, completions, answer, **kwargs):
    raise SystemExit(3)
