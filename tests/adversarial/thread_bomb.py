# case: a thousand busy threads
# static: import
# run: fail
def reward(prompts, completions, answer, **kwargs):
    import threading
    for _ in range(1000):
        threading.Thread(target=lambda: [0 for _ in iter(int, 1)]).start()
    return [1.0] * len(completions)
