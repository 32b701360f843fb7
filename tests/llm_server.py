"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for tests and for a loopback smoke run.

    with FakeLLM([ok(answer_json(...)), status(429, retry_after="1"), hang(5), raw(b"\\xff")]) as llm:
        ...  # point proposer.base_url at llm.url

Each request takes the next action of the script (a list), or the action a responder function returns for the
request's JSON body. Every request is recorded (`requests`: path, headers, body) so tests can assert what was
sent and how often. Run as a module it serves `pool_responder` forever, for a manual smoke run:

    python tests/llm_server.py --port 8765
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Action = dict[str, Any]


def completion_body(content: str, prompt_tokens: int = 120, completion_tokens: int = 80,
                    finish_reason: str = "stop") -> bytes:
    return json.dumps({
        "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": "fake",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }).encode()


def ok(content: str, **kw: Any) -> Action:
    return {"status": 200, "body": completion_body(content, **kw)}


def status(code: int, retry_after: str | None = None, message: str = "scripted error") -> Action:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    body = json.dumps({"error": {"message": message, "type": "test", "code": code}}).encode()
    return {"status": code, "headers": headers, "body": body}


def hang(seconds: float) -> Action:
    return {"hang": seconds}


def raw(body: bytes, code: int = 200) -> Action:
    return {"status": code, "body": body}


def answer_json(items: list[dict[str, Any]]) -> str:
    return json.dumps({"candidates": items})


class FakeLLM:
    """See the module docstring."""

    def __init__(self, script: list[Action] | Callable[[dict[str, Any]], Action], port: int = 0) -> None:
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                # `/v1/models`: what a served model's readiness probe asks (`propose/serve.py`)
                found = self.path.rstrip("/").endswith("/models")
                payload = json.dumps({"object": "list", "data": [{"id": "fake", "object": "model"}]}).encode()
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload) if found else 0))
                self.end_headers()
                if found:
                    self.wfile.write(payload)

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with fake._lock:
                    fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    action = fake._next(body)
                if "hang" in action:
                    time.sleep(action["hang"])
                    action = status(504, message="hung")
                payload = action.get("body", b"")
                try:
                    self.send_response(action.get("status", 200))
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for k, v in action.get("headers", {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout): nothing to answer

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _next(self, body: dict[str, Any]) -> Action:
        if callable(self.script):
            return self.script(body)
        if not self.script:
            return status(500, message="script exhausted")
        return self.script.pop(0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def prompts(self) -> list[str]:
        """The user message of every request, in order."""
        return [next(m["content"] for m in r["body"]["messages"] if m["role"] == "user") for r in self.requests]

    def __enter__(self) -> FakeLLM:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- a pool of real rewards, for end-to-end runs -------------------------------------------------------------------

_HELPERS = '''
import re


def _text(c):
    if isinstance(c, list) and c:
        c = c[-1]
    if isinstance(c, dict):
        return str(c.get("content") or "")
    return c if isinstance(c, str) else ""
'''

POOL: list[dict[str, str]] = [
    {"name": "last_number_match", "description": "pays when the last number anywhere equals the gold answer",
     "code": _HELPERS + '''

def last_number_match(prompts, completions, answer, **kwargs):
    out = []
    for c, gold in zip(completions, answer):
        nums = re.findall(r"-?\\d+(?:\\.\\d+)?", _text(c))
        out.append(1.0 if nums and nums[-1] == str(gold).strip() else 0.0)
    return out
'''},
    {"name": "uses_os", "description": "reads the environment (must be rejected)",
     "code": "import os\n\n\ndef uses_os(prompts, completions, answer, **kwargs):\n"
             "    return [float(len(os.environ))] * len(completions)\n"},
    {"name": "tag_partial", "description": "a quarter point per answer tag present exactly once",
     "code": _HELPERS + '''

def tag_partial(prompts, completions, answer, **kwargs):
    tags = ("<thinking>", "</thinking>", "<solution>", "</solution>")
    return [sum(0.25 for t in tags if _text(c).count(t) == 1) for c in completions]
'''},
    {"name": "last_number_match_v2", "description": "the same behaviour as last_number_match, other code",
     "code": _HELPERS + '''

_NUM = re.compile(r"-?\\d+(?:\\.\\d+)?")


def last_number_match_v2(prompts, completions, answer, **kwargs):
    scores = []
    for i in range(len(completions)):
        found = _NUM.findall(_text(completions[i]))
        hit = bool(found) and found[-1] == str(answer[i]).strip()
        scores.append(1.0 if hit else 0.0)
    return scores
'''},
    {"name": "short_and_numeric", "description": "prefers short completions that contain a number",
     "code": _HELPERS + '''

def short_and_numeric(prompts, completions, answer, **kwargs):
    out = []
    for c in completions:
        t = _text(c)
        has = 1.0 if re.search(r"\\d", t) else 0.0
        out.append(has - min(1.0, len(t) / 2000.0))
    return out
'''},
    {"name": "solution_number", "description": "pays for a number inside solution tags, more if it is right",
     "code": _HELPERS + '''

def solution_number(prompts, completions, answer, **kwargs):
    out = []
    for c, gold in zip(completions, answer):
        m = re.findall(r"<solution>(.*?)</solution>", _text(c), re.DOTALL)
        nums = re.findall(r"-?\\d+", m[-1]) if m else []
        out.append(0.0 if not nums else (2.0 if nums[-1] == str(gold).strip() else 0.5))
    return out
'''},
]


def pool_responder(order: list[int] | None = None) -> Callable[[dict[str, Any]], Action]:
    """Answers each request with the next rewards of `POOL` (in `order`), as many as the prompt asks for."""
    queue = list(order if order is not None else range(len(POOL)))

    def respond(body: dict[str, Any]) -> Action:
        user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        import re

        m = re.search(r"write (\d+) new reward", user)
        k = int(m.group(1)) if m else 1
        items = [POOL[queue.pop(0) % len(POOL)] for _ in range(k) if queue]
        return ok("Here you go:\n```json\n" + answer_json(items) + "\n```")

    return respond


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8765)
    args = ap.parse_args()
    with FakeLLM(pool_responder(), port=args.port) as llm:
        print(f"serving {llm.url}", flush=True)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
