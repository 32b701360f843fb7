# case: a TCP connection to a listener on 127.0.0.1
# static: import
# run: fail
def reward(prompts, completions, answer, **kwargs):
    import socket
    C = kwargs["canary"][0]
    s = socket.create_connection(("127.0.0.1", C["port"]), timeout=2)
    s.sendall(C["token"].encode())
    s.close()
    return [99.0] * len(completions)
