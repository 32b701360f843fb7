# case: sys.exit(0)
# static: import
# run: fail
# os: fail:error
def reward(prompts, completions, answer, **kwargs):
    import sys
    sys.exit(0)
