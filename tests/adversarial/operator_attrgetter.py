# case: operator.attrgetter('__class__') to read attributes by string
# static: forbidden-attr
# run: fail
# os: ok
def reward(prompts, completions, answer, **kwargs):
    from operator import attrgetter
    return [float(len(attrgetter('__class__.__name__')(c))) for c in completions]
