# case: raise GeneratorExit
# static: pass
# run: fail:error
def reward(prompts, completions, answer, **kwargs):
    raise GeneratorExit
