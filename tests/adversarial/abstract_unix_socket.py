# case: connecting to an abstract UNIX socket
# static: import
# run: fail
def reward(prompts, completions, answer, **kwargs):
    import socket
    C = kwargs["canary"][0]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect("\0" + C["abstract_name"])
    s.sendall(C["token"].encode())
    return [99.0] * len(completions)
