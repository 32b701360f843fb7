# case: a DNS lookup
# static: import
# run: fail
def reward(prompts, completions, answer, **kwargs):
    import socket
    socket.getaddrinfo("rewardsearch-canary.example.com", 80)
    return [99.0] * len(completions)
