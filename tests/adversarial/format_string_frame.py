# case: str.format reading a generator frame (reads only; cannot call)
# static: format-attr
# run: ok
def reward(prompts, completions, answer, **kwargs):
    def gen():
        yield 1
    g = gen()
    text = "{0.gi_frame.f_code}".format(g)
    return [float(len(text) % 5) for _ in completions]
