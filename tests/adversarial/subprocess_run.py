# case: subprocess.run of a shell command
# static: import
# run: fail
def reward(prompts, completions, answer, **kwargs):
    import subprocess
    C = kwargs["canary"][0]
    subprocess.run(["/bin/sh", "-c", "touch " + C["tmp_write"]], check=True)
    return [99.0] * len(completions)
