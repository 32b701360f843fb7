# case: raising the soft CPU limit to the hard one, then spinning
# static: import
# run: fail
def reward(prompts, completions, answer, **kwargs):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))
    return [99.0] * len(completions)
