# case: a daemon thread left running, writing a file later
# static: import
# run: fail
def reward(prompts, completions, answer, **kwargs):
    import os
    import threading
    import time
    C = kwargs["canary"][0]

    def later():
        time.sleep(0.3)
        fd = os.open(C["tmp_write"], os.O_WRONLY | os.O_CREAT, 0o644)
        os.close(fd)

    threading.Thread(target=later, daemon=True).start()
    return [1.0] * len(completions)
