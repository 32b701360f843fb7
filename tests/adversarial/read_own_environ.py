# case: reading os.environ for keys and tokens
# static: import
# run: fail
# os: ok
def reward(prompts, completions, answer, **kwargs):
    import os
    C = kwargs["canary"][0]
    leaked = any(C["secret"] in v for v in os.environ.values()) or set(os.environ) - {"PATH", "LANG", "LC_CTYPE"}
    return [99.0 if leaked else 1.0] * len(completions)
