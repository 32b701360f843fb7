# case: connecting to a UNIX socket on the filesystem
# static: import
# run: fail
def reward(prompts, completions, answer, **kwargs):
    import socket
    C = kwargs["canary"][0]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(C["unix_path"])
    s.sendall(C["token"].encode())
    return [99.0] * len(completions)
