# Run: python -m pytest tests/test_adversarial.py -q
#      RS_CATALOG_TABLE=benchmarks/results/catalog.md python -m pytest tests/test_adversarial.py -q   (+ the table)
"""The adversarial catalog (tests/adversarial/*.py, format in its README) at every sandbox level this machine
offers, with and without the static layer, and with the Python guards off so the OS layer is tested alone.

Every case runs in a real worker. Call-mode cases get fresh canary targets (secret files, a world-writable
directory, a victim process holding a secret, TCP/UNIX/abstract listeners); after the call the harness checks
every target (files unchanged or absent, no connection carrying the case's token, the victim alive, no process
of the worker left) and that the caller's inputs are unchanged. Any harm not declared `escape` fails the test,
and so does a declared escape that did not happen: the weak level's escapes prove the harness can see one.
This process surviving every case is part of every test.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from rewardsearch.config import SandboxConfig
from rewardsearch.rewards.spec import RewardSpec
from rewardsearch.sandbox import SandboxedReward, describe_machine, dry_run, static_check
from rewardsearch.sandbox.isolation import LEVELS, WEAK_LEVELS

CASE_DIR = Path(__file__).parent / "adversarial"
ESCAPED = 99.0  # what a payload returns when its hostile action worked
# Small limits keep each case within about a second; generous start time for a loaded 2-core machine.
CFG = SandboxConfig(call_timeout_s=1.0, start_timeout_s=30.0, memory_mb=256, max_failures=3, allow_weak=True)
PROBE_SAMPLES = [("What is 2 + 3?", "5")]  # the dry run adds a negative and a fractional sample
PARALLEL = 4  # cases in flight at once: most of a case is waiting (process start, deadlines)
PROBE_OUTCOMES = ("reject", "accept", "clean", "flags=")


# -- the catalog ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    name: str
    source: str
    header: dict[str, str]

    @property
    def probe(self) -> bool:
        """Judged by the dry run (level-independent), not by one call."""
        return self.header["run"].startswith(PROBE_OUTCOMES)

    def expected(self, mode: str, level: str) -> str:
        if mode == "static":
            if self.header["static"] != "pass":
                return f"static:{self.header['static']}"
            mode = "guarded"  # it passed the static check: the guarded worker runs it
        for key in (f"{mode}@{level}", mode, "run"):
            if key in self.header:
                return self.header[key]
        raise AssertionError("unreachable: every case has a run outcome")


def load_cases() -> list[Case]:
    cases = []
    for path in sorted(CASE_DIR.glob("*.py")):
        source = path.read_text()
        header = dict(re.findall(r"^# (\S+): (.*)$", source, re.M))
        assert {"case", "static", "run"} <= set(header), f"{path.name}: header needs case, static and run"
        cases.append(Case(path.stem, source, header))
    return cases


CASES = load_cases()


def modes_at(level: str, available: list[str]) -> list[str]:
    """static everywhere; guarded at the strongest level and at process; os wherever an OS layer exists."""
    modes = ["static"]
    if level == available[0] or level in WEAK_LEVELS:
        modes.append("guarded")
    if level not in WEAK_LEVELS:
        modes.append("os")
    return modes


# -- canary targets ------------------------------------------------------------------------------------------
class Listeners:
    """TCP, UNIX-path and abstract UNIX listeners that record the first bytes (a case's token) of every client."""

    def __init__(self, root: Path) -> None:
        self.seen: list[str] = []
        self.unix_path = str(root / "listen.sock")
        self.abstract_name = f"rewardsearch-test-{os.getpid()}-{secrets.token_hex(4)}"
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.port = self.tcp.getsockname()[1]
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix.bind(self.unix_path)
        os.chmod(self.unix_path, 0o777)  # only the sandbox may stand in the way, not file permissions
        self.abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.abstract.bind("\0" + self.abstract_name)
        self._stop = False
        for server in (self.tcp, self.unix, self.abstract):
            server.listen(16)
            server.settimeout(0.2)
            threading.Thread(target=self._serve, args=(server,), daemon=True).start()

    def _serve(self, server: socket.socket) -> None:
        while not self._stop:
            try:
                conn, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            conn.settimeout(2.0)
            try:
                data = conn.recv(64)
            except OSError:
                data = b""
            conn.close()
            self.seen.append(data.decode(errors="replace") or "<anonymous>")

    def close(self) -> None:
        self._stop = True
        for server in (self.tcp, self.unix, self.abstract):
            server.close()


def _snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
        out[str(path.relative_to(root))] = (st.st_mode, st.st_size, digest)
    return out


class Canary:
    """Fresh targets for one run of one case; `harm()` lists whatever the run did to them."""

    def __init__(self, root: Path, listeners: Listeners) -> None:
        self.token = secrets.token_hex(8)
        self.secret = f"rs-canary-secret-{secrets.token_hex(8)}"
        self.listeners = listeners
        self.dir = root / self.token
        home = self.dir / "home"
        layout = {  # path: (mode, content); directories end with "/"
            "home/": (0o755, None), "home/.ssh/": (0o700, None), "home/.ssh/id_rsa": (0o600, self.secret),
            "home/.cache/": (0o755, None), "home/.cache/huggingface/": (0o700, None),
            "home/.cache/huggingface/token": (0o600, self.secret), "home/.bashrc": (0o644, "# bashrc\n"),
            "site/": (0o755, None), "site/existing.pth": (0o644, "\n"), "open/": (0o777, None),
            "open/victim.txt": (0o644, "keep me\n"), "pub/": (0o755, None), "pub/token": (0o644, self.secret),
        }  # fmt: skip
        self.dir.mkdir(mode=0o755)
        for rel, (mode, content) in layout.items():
            path = self.dir / rel.rstrip("/")
            if content is None:
                path.mkdir(exist_ok=True)
            else:
                path.write_text(content)
            os.chmod(path, mode)
        self.tmp_write = f"/tmp/rewardsearch-canary-{self.token}"
        self.shm_write = f"/dev/shm/rewardsearch-canary-{self.token}"
        self.victim = subprocess.Popen(["sleep", "600"], env={"RS_SECRET": self.secret, "PATH": "/usr/bin:/bin"})
        self.before = _snapshot(self.dir)
        self.kwargs = {
            "token": self.token, "secret": self.secret, "home": str(home), "site": str(self.dir / "site"),
            "open_dir": str(self.dir / "open"), "victim_file": str(self.dir / "open" / "victim.txt"),
            "world_readable": str(self.dir / "pub" / "token"), "tmp_write": self.tmp_write,
            "victim_pid": self.victim.pid, "driver_pid": os.getpid(), "port": listeners.port,
            "unix_path": listeners.unix_path, "abstract_name": listeners.abstract_name,
        }  # fmt: skip

    def harm(self) -> list[str]:
        found = []
        after = _snapshot(self.dir)
        for rel in sorted(set(self.before) | set(after)):
            if self.before.get(rel) != after.get(rel):
                found.append(f"{rel} {'created' if rel not in self.before else 'changed or removed'}")
        for path in (self.tmp_write, self.shm_write):
            if os.path.lexists(path):
                found.append(f"{path} created")
        if self.victim.poll() is not None:
            found.append(f"victim process killed ({self.victim.returncode})")
        if any(self.token in seen for seen in self.listeners.seen):
            found.append("a listener received the token")
        return found

    def cleanup(self) -> None:
        self.victim.kill()
        self.victim.wait()
        for path in (self.tmp_write, self.shm_write):
            if os.path.lexists(path):
                os.unlink(path)
        shutil.rmtree(self.dir, ignore_errors=True)


def _session_members(sid: int) -> list[int]:
    """Pids (as this process sees them) whose session is `sid`: what is left of a worker."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # fields after the command: state ppid pgrp session ...
            pids.append(int(entry))
    return pids


# -- running one case ----------------------------------------------------------------------------------------
@dataclass
class Outcome:
    observed: str  # static:RULE | fail:KIND | ok | escape | reject | accept
    detail: str
    flags: tuple[str, ...] = ()


def batch(n: int, canary: dict | None) -> dict:
    texts = ["<thinking>2 + 3 = 5</thinking><solution>5</solution>", "<solution>6</solution>", "", "five"]
    out: dict = {
        "prompts": [[{"role": "user", "content": "What is 2 + 3?"}] for _ in range(n)],
        "completions": [[{"role": "assistant", "content": texts[i % 4]}] for i in range(n)],
        "answer": ["5"] * n,
    }
    if canary is not None:
        out["canary"] = [canary] * n
    return out


def run_case(case: Case, mode: str, level: str, root: Path, listeners: Listeners) -> Outcome:
    cfg = CFG.model_copy(update={"level": level})
    if mode == "static":
        st = static_check(case.source, "reward")
        if not st.ok:
            return Outcome(f"static:{st.rule}", st.reason or "")
    guards = mode != "os"
    spec = RewardSpec(name="reward", source=case.source)
    if case.probe:
        res = dry_run(spec, cfg, PROBE_SAMPLES, guards=guards)
        return Outcome("accept" if res.ok else "reject", res.reason or "", tuple(res.flags))
    canary = Canary(root, listeners)
    try:
        kwargs = batch(4, canary.kwargs)
        original = copy.deepcopy(kwargs)
        reward = SandboxedReward(spec, cfg, guards=guards)
        sids: set[int] = set()
        try:
            scores = reward(**kwargs)
            if reward._proc is not None:
                sids.add(reward._proc.pid)
            failures, kind, error = reward.failures, reward.last_failure_kind, reward.last_error
        finally:
            reward.close()
        time.sleep(0.05)  # a write or connection the payload started must have landed before we look
        harm = canary.harm()
        harm += [f"worker process {pid} outlived close()" for sid in sids for pid in _session_members(sid)]
        if kwargs != original:
            harm.append("the caller's inputs were changed")
    finally:
        canary.cleanup()
    if harm or ESCAPED in scores:
        return Outcome("escape", "; ".join(harm) or f"the payload reported success: {scores}")
    if failures:
        return Outcome(f"fail:{kind}", error or "")
    return Outcome("ok", json.dumps(scores))


def matches(expected: str, got: Outcome) -> bool:
    if expected in ("fail", "reject", "accept", "ok", "escape") or expected.startswith("static:"):
        return got.observed.split(":")[0] == expected.split(":")[0] and (
            not expected.startswith("static:") or got.observed == expected
        )
    if expected.startswith("fail:"):
        return got.observed == expected
    if expected.startswith("reject:"):
        return got.observed == "reject" and expected.split(":", 1)[1] in got.detail
    if expected == "clean":
        return got.observed == "accept" and set(got.flags) <= {"plain_form_fails"}
    if expected.startswith("flags="):
        return got.observed == "accept" and set(expected[6:].split(",")) <= set(got.flags)
    raise AssertionError(f"unknown expected outcome {expected!r}")


# -- the tests -----------------------------------------------------------------------------------------------
AVAILABLE = describe_machine()["available"]
TABLE: list[dict] = []


@pytest.fixture(scope="module")
def targets() -> Iterator[tuple[Path, Listeners]]:
    # Under /tmp with 0755 directories, so that file permissions alone do not protect the world-readable
    # and world-writable targets: the sandbox has to.
    root = Path(tempfile.mkdtemp(prefix="rs-adversarial-", dir="/tmp"))
    os.chmod(root, 0o755)
    listeners = Listeners(root)
    yield root, listeners
    listeners.close()
    shutil.rmtree(root, ignore_errors=True)
    assert "<anonymous>" not in listeners.seen, f"something connected without a token: {listeners.seen}"
    if out := os.environ.get("RS_CATALOG_TABLE"):
        write_table(Path(out))


def test_catalog_is_big_enough_and_well_formed() -> None:
    assert len(CASES) >= 60
    for case in CASES:
        for mode in ("static", "guarded", "os"):
            for level in LEVELS:
                matches(case.expected(mode, level), Outcome("ok", ""))  # raises on an unknown outcome


def test_static_layer_reports_line_and_rule_for_every_rejection() -> None:
    for case in CASES:
        result = static_check(case.source, "reward")
        want = case.header["static"]
        assert (result.rule or "pass") == want, f"{case.name}: {result.reason}"
        if not result.ok:
            assert re.match(r"line \d+: ", result.reason or ""), result.reason


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("mode", ["static", "guarded", "os"])
def test_catalog(level: str, mode: str, targets: tuple[Path, Listeners]) -> None:
    if level not in AVAILABLE:
        pytest.skip(f"level {level} is not available here: {describe_machine()['levels'].get(level)}")
    if mode not in modes_at(level, AVAILABLE):
        pytest.skip(f"mode {mode} does not run at level {level} (see tests/adversarial/README.md)")
    root, listeners = targets
    # Probe cases do not depend on the OS level (the dry run judges Python behaviour): they run at the strongest
    # level only, and in guarded mode only where it differs from static mode (the static check rejects them).
    cases = [c for c in CASES if not c.probe or (
        level == AVAILABLE[0] and (mode != "guarded" or c.header["static"] != "pass"))]  # fmt: skip
    with ThreadPoolExecutor(PARALLEL) as pool:
        outcomes = list(pool.map(lambda c: run_case(c, mode, level, root, listeners), cases))
    mismatches = []
    for case, got in zip(cases, outcomes, strict=True):
        want = case.expected(mode, level)
        ok = matches(want, got)
        TABLE.append({"case": case.name, "level": level, "mode": mode, "expected": want,
                      "got": got.observed + (f" {list(got.flags)}" if got.flags else ""), "match": ok})  # fmt: skip
        if not ok:
            mismatches.append(f"{case.name}: expected {want}, got {got.observed} {list(got.flags)}: {got.detail[:300]}")
    assert not mismatches, f"{len(mismatches)} of {len(cases)} cases at {level}/{mode}:\n" + "\n".join(mismatches)


def write_table(path: Path) -> None:
    """Markdown: one row per case, one column per level/mode (expected == got shows once)."""
    columns = sorted({(r["level"], r["mode"]) for r in TABLE}, key=lambda c: (LEVELS.index(c[0]), c[1]))
    cells = {(r["case"], r["level"], r["mode"]): r for r in TABLE}
    lines = [
        f"# Adversarial catalog: {len(CASES)} cases, machine levels {', '.join(AVAILABLE)}",
        "",
        "| case | " + " | ".join(f"{lv}/{m}" for lv, m in columns) + " |",
        "| --- | " + " | ".join("---" for _ in columns) + " |",
    ]
    for case in CASES:
        row = []
        for lv, m in columns:
            r = cells.get((case.name, lv, m))
            row.append("-" if r is None else (r["got"] if r["match"] else f"**{r['got']} (expected {r['expected']})**"))
        lines.append(f"| {case.name} | " + " | ".join(row) + " |")
    lines += ["", "| level/mode | cases run | as expected | rejected by static | failed (contained) | ok | probe reject | "
              "probe accept | escapes |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for lv, m in columns:
        rows = [r for r in TABLE if (r["level"], r["mode"]) == (lv, m)]

        def count(prefix: str, rows: list[dict] = rows) -> int:
            return sum(r["got"].startswith(prefix) for r in rows)

        lines.append(f"| {lv}/{m} | {len(rows)} | {sum(r['match'] for r in rows)} | {count('static:')} | "
                     f"{count('fail')} | {count('ok')} | {count('reject')} | {count('accept')} | {count('escape')} |")  # fmt: skip
    total = len(TABLE)
    bad = sum(not r["match"] for r in TABLE)
    escapes = [r for r in TABLE if r["got"].startswith("escape")]
    lines += ["", f"{total} runs, {total - bad} as expected, {bad} not; escapes: "
              + (", ".join(f"{r['case']} at {r['level']}/{r['mode']}" for r in escapes) or "none")]  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
