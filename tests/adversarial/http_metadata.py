# case: HTTP to the cloud metadata address 169.254.169.254
# static: import
# run: fail
def reward(prompts, completions, answer, **kwargs):
    import http.client
    conn = http.client.HTTPConnection("169.254.169.254", 80, timeout=1)
    conn.request("GET", "/latest/meta-data/")
    conn.getresponse()
    return [99.0] * len(completions)
