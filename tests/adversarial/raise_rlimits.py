# case: raising its own rlimits, then allocating 2 GB
# static: import
# run: fail
def reward(prompts, completions, answer, **kwargs):
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    x = bytearray(2 * 1024 ** 3)
    return [99.0] * len(completions)
