# Run: python -m pytest tests/test_sandbox_os.py -q
"""The sandbox's OS layer and process hygiene: level detection and the weak-level opt-in, what a worker's
zygote really runs as (uid, namespaces, no-new-privs, seccomp), the seccomp and Landlock primitives on their
own, a fresh process for every call, no process or zombie left behind, the per-call latency, the `validate`
command, and the project's own rewards (base rewards, evolve genomes) passing the dry run.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rewardsearch.cli import app
from rewardsearch.config import SandboxConfig
from rewardsearch.propose.evolve import render
from rewardsearch.rewards.spec import RewardSpec
from rewardsearch.sandbox import (
    SandboxedReward,
    SandboxUnavailable,
    check_reward,
    describe_machine,
    dry_run,
    resolve_level,
)
from rewardsearch.sandbox import levels as levels_mod
from rewardsearch.sandbox.isolation import LEVELS

SANDBOX_DIR = Path(levels_mod.__file__).parent
AVAILABLE = describe_machine()["available"]
STRONGEST = AVAILABLE[0]
CFG = SandboxConfig(call_timeout_s=2.0, start_timeout_s=30.0, memory_mb=256, max_failures=3, allow_weak=True)
SAMPLES = [("What is 2 + 3?", "5")]
ROOT = os.geteuid() == 0
needs = pytest.mark.skipif


def make(body: str, header: str = "") -> RewardSpec:
    source = textwrap.dedent(header) + "def reward(prompts, completions, answer, **kwargs):\n" + textwrap.indent(
        textwrap.dedent(body), "    "
    )
    return RewardSpec(name="reward", source=source)


def batch(n: int = 2) -> dict:
    return {
        "prompts": [[{"role": "user", "content": "q"}]] * n,
        "completions": [[{"role": "assistant", "content": f"<solution>{i}</solution>"}] for i in range(n)],
        "answer": ["1"] * n,
    }


def session_members(sid: int) -> list[tuple[int, str]]:
    """(pid, state) of every process whose session is `sid` (a worker and everything below it)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid:
                out.append((int(entry), fields[0]))
    return out


def status_field(pid: int, name: str) -> str:
    line = next(ln for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ln.startswith(name + ":"))
    return line.split(":", 1)[1].strip()


# -- levels --------------------------------------------------------------------------------------------------
def test_detection_reports_every_level_and_auto_takes_the_strongest():
    found = describe_machine()
    assert set(found["levels"]) == set(LEVELS)
    assert found["levels"]["process"] is None  # the weak level always exists
    assert AVAILABLE == [lv for lv in LEVELS if found["levels"][lv] is None]
    assert resolve_level(SandboxConfig()) == STRONGEST or STRONGEST == "process"


def test_weak_level_needs_the_opt_in(monkeypatch, caplog):
    fake = {"levels": {"strict": "no namespaces", "landlock": "no Landlock", "seccomp": "not x86_64", "process": None},
            "available": ["process"]}  # fmt: skip
    monkeypatch.setattr(levels_mod, "describe_machine", lambda: fake)
    with pytest.raises(SandboxUnavailable, match=r"only the weak sandbox level 'process'.*no Landlock.*allow_weak=true"):
        resolve_level(SandboxConfig())
    with pytest.raises(SandboxUnavailable, match="sandbox.level='seccomp' is not available here: not x86_64"):
        resolve_level(SandboxConfig(level="seccomp"))
    assert resolve_level(SandboxConfig(allow_weak=True)) == "process"
    # a reward refuses to start, loudly, rather than failing quietly as a candidate
    with pytest.raises(SandboxUnavailable):
        SandboxedReward(make("return [1.0] * len(completions)"), SandboxConfig())(**batch())
    with caplog.at_level(logging.WARNING, logger="rewardsearch.sandbox"):
        with SandboxedReward(make("return [1.0] * len(completions)"), CFG) as reward:
            assert reward(**batch()) == [1.0, 1.0]
            assert reward.stats["sandbox_level"] == "process"
    assert "weak level 'process'" in caplog.text


def test_explicit_weak_level_needs_the_opt_in_even_where_better_exists():
    with pytest.raises(SandboxUnavailable, match="level='process' is the weak level"):
        resolve_level(SandboxConfig(level="process"))


def test_parent_is_made_non_dumpable_only_where_a_worker_could_read_it():
    assert levels_mod.needs_parent_protection({"uid": None, "landlock": False, "namespaces": False})
    assert not levels_mod.needs_parent_protection({"uid": None, "landlock": True, "namespaces": False})
    assert not levels_mod.needs_parent_protection({"uid": 1 << 24, "landlock": False, "namespaces": False})
    if ROOT and STRONGEST != "process":  # here every real plan separates the uid: this process stays dumpable
        assert not levels_mod.needs_parent_protection(levels_mod.plan_for(STRONGEST))


def test_plans_give_each_worker_its_own_uid():
    plans = [levels_mod.plan_for(STRONGEST) for _ in range(20)]
    if ROOT and STRONGEST != "process":
        uids = {p["uid"] for p in plans}
        assert len(uids) == 20 and all(u >= 1 << 24 for u in uids)
        assert all(p["nproc"] == 2 for p in plans)
    assert levels_mod.plan_for("process")["uid"] is None


# -- what the zygote runs as ---------------------------------------------------------------------------------
@needs("strict" not in AVAILABLE, reason="level strict is not available here")
def test_strict_zygote_is_isolated():
    with SandboxedReward(make("return [1.0] * len(completions)"), CFG.model_copy(update={"level": "strict"})) as r:
        assert r(**batch()) == [1.0, 1.0]
        z = r._zygote.pid
        assert status_field(z, "NoNewPrivs") == "1"
        assert status_field(z, "Seccomp") == "2"  # filter mode
        if ROOT:
            assert status_field(z, "Uid").split()[0] != "0"
            assert status_field(z, "CapEff") == "0000000000000000"
        for ns in ("net", "pid_for_children", "mnt", "ipc", "uts"):
            assert os.readlink(f"/proc/{z}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
        assert status_field(z, "NSpid").split()[-1] == "1"  # pid 1 of its own namespace
        mechanisms = " ".join(r.stats["sandbox_mechanisms"])
        assert "namespaces" in mechanisms and "landlock" in mechanisms and "seccomp" in mechanisms


@needs("seccomp" not in AVAILABLE, reason="seccomp is not available here")
def test_seccomp_filters_on_their_own(tmp_path):
    """The two BPF programs in a throw-away interpreter: what they deny and what they let through."""
    script = textwrap.dedent(f"""
        import json, os, resource, socket, sys
        sys.path.insert(0, {str(SANDBOX_DIR)!r})
        import isolation
        out = {{}}
        def attempt(name, fn):
            try:
                fn()
                out[name] = "allowed"
            except OSError as exc:
                out[name] = exc.errno
            except RuntimeError:
                out[name] = "runtime-error"
            except ValueError:  # resource.setrlimit's word for EPERM
                out[name] = "value-error"
        isolation.install_filter(isolation.build_filter("zygote"))
        attempt("socket", lambda: socket.socket())
        attempt("open_write", lambda: open({str(tmp_path / "x")!r}, "w"))
        attempt("open_read", lambda: open(os.__file__).close())
        attempt("unlink", lambda: os.unlink({str(tmp_path / "nothing")!r}))
        attempt("exec", lambda: os.execv("/bin/true", ["true"]))
        isolation.install_filter(isolation.build_filter("call"))
        attempt("fork", lambda: os.fork())
        attempt("kill", lambda: os.kill(os.getpid(), 0))
        attempt("getrlimit", lambda: resource.getrlimit(resource.RLIMIT_NOFILE))
        attempt("setrlimit", lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32)))  # lowering: only the filter says no
        import threading
        attempt("thread", lambda: threading.Thread(target=int).start())
        print(json.dumps(out))
    """)
    done = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=60)
    out = json.loads(done.stdout)
    assert out == {"socket": 1, "open_write": 13, "open_read": "allowed", "unlink": 1, "exec": 1, "fork": 1,
                   "kill": 1, "getrlimit": "allowed", "setrlimit": "value-error", "thread": "runtime-error"}, done.stderr  # fmt: skip
    assert not (tmp_path / "x").exists()


@needs("landlock" not in AVAILABLE, reason="Landlock is not available here")
def test_landlock_read_only_on_its_own(tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "f.txt").write_text("ok")
    (tmp_path / "secret.txt").write_text("secret")
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(SANDBOX_DIR)!r})
        import isolation
        isolation.landlock_read_only([{str(allowed)!r}])
        out = {{}}
        for name, path, mode in (("read_allowed", {str(allowed / "f.txt")!r}, "r"),
                                 ("write_allowed", {str(allowed / "g.txt")!r}, "w"),
                                 ("read_outside", {str(tmp_path / "secret.txt")!r}, "r"),
                                 ("proc_environ", "/proc/1/environ", "rb")):
            try:
                open(path, mode).close()
                out[name] = "allowed"
            except OSError as exc:
                out[name] = exc.errno
        print(json.dumps(out))
    """)
    done = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=60)
    assert json.loads(done.stdout) == {"read_allowed": "allowed", "write_allowed": 13, "read_outside": 13,
                                       "proc_environ": 13}, done.stderr  # fmt: skip


# -- a fresh process per call, and nothing left behind -------------------------------------------------------
@pytest.mark.parametrize("level", AVAILABLE)
def test_every_call_runs_in_a_fresh_process_with_fresh_module_state(level):
    spec = make(
        "import os\nSEEN.append(os.getpid())\nreturn [float(len(SEEN)), float(os.getpid() % 97)]",
        header="SEEN = []\n",
    )
    with SandboxedReward(spec, CFG.model_copy(update={"level": level}), guards=False) as reward:
        results = [reward(**batch()) for _ in range(4)]
    assert [r[0] for r in results] == [1.0] * 4  # module state never survives a call
    assert len({r[1] for r in results}) == 4  # four different processes


@pytest.mark.parametrize("level", AVAILABLE)
def test_no_process_or_zombie_outlives_close(level):
    cfg = CFG.model_copy(update={"level": level, "call_timeout_s": 0.5})
    for body in ("return [1.0] * len(completions)", "while True:\n    pass"):
        reward = SandboxedReward(make(body), cfg)
        reward(**batch())
        reward(**batch())
        sid = reward._proc.pid
        assert len(session_members(sid)) <= 4  # W, Z, the spare and the last child at most: no pile-up
        reward.close()
        assert session_members(sid) == [], body


def test_killed_zygote_is_reaped_and_the_next_call_restarts():
    with SandboxedReward(make("return [1.0] * len(completions)"), CFG) as reward:
        assert reward(**batch()) == [1.0, 1.0]
        sid = reward._proc.pid
        reward._zygote.kill()
        time.sleep(0.3)
        assert reward(**batch()) == [1.0, 1.0]  # died while idle: restarted, not a failure
        assert reward.failures == 0 and reward.stats["restarts"] == 1
        assert session_members(sid) == []


def test_timeout_in_a_call_keeps_the_zygote_and_a_hung_worker_is_killed_from_outside():
    cfg = CFG.model_copy(update={"call_timeout_s": 0.5})
    with SandboxedReward(make("while True:\n    pass"), cfg) as reward:
        reward.start()
        started = time.monotonic()
        assert reward(**batch()) == [None, None]
        assert time.monotonic() - started < 0.5 + 1.0
        assert reward.last_failure_kind == "timeout" and reward.worker_pid is not None
        # a zygote that stops answering (SIGSTOP) meets the parent's own deadline: the whole worker goes
        sid = reward._proc.pid
        os.kill(reward._zygote.pid, 19)
        started = time.monotonic()
        assert reward(**batch()) == [None, None]
        assert time.monotonic() - started < 0.5 + 1.0 + 3.0
        assert "no reply from the worker" in reward.last_error and reward.worker_pid is None
        assert session_members(sid) == []


def test_typical_call_latency_is_small():
    """The overhead that matters in training: a warm worker, a batch of 16, calls spaced like GRPO steps."""
    spec = make(
        "return [2.0 if SOL.search(c[0]['content']) else 0.0 for c in completions]",
        header="import re\nSOL = re.compile(r'<solution>(.*?)</solution>')\n",
    )
    with SandboxedReward(spec, SandboxConfig()) as reward:
        reward(**batch(16))
        latencies = []
        for _ in range(20):
            time.sleep(0.02)
            t0 = time.perf_counter()
            reward(**batch(16))
            latencies.append((time.perf_counter() - t0) * 1000)
    # measured ~2 ms on a loaded 2-core VM; the bound only catches a regression to per-call worker starts
    assert statistics.median(latencies) < 100, latencies


# -- the validate command ------------------------------------------------------------------------------------
def _validate(tmp_path, source: str, *args: str):
    path = tmp_path / "r.py"
    path.write_text(source)
    result = CliRunner().invoke(app, ["validate", str(path), "--json", *args])
    return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1])


def test_validate_json_accepted_and_rejected(tmp_path):
    good = (Path(__file__).parent / "adversarial" / "legit_regex_fraction.py").read_text()
    code, out = _validate(tmp_path, good)
    assert code == 0, out
    assert {"verdict", "stage", "reason", "flags", "sandbox_level", "latency_ms"} <= set(out)
    assert (out["verdict"], out["stage"], out["reason"], out["flags"]) == ("accepted", "probe", None, [])
    assert out["sandbox_level"] == STRONGEST and out["latency_ms"] > 0

    hostile = "import os\ndef reward(prompts, completions, **kwargs):\n    return [1.0] * len(completions)\n"
    code, out = _validate(tmp_path, hostile)
    assert (code, out["verdict"], out["stage"]) == (1, "rejected", "static")
    assert out["reason"].startswith("line 1: import of 'os' is not allowed")
    code, out = _validate(tmp_path, hostile, "--skip-static")
    assert (code, out["verdict"], out["stage"]) == (1, "rejected", "load")
    assert "import of 'os' is not allowed" in out["reason"]


def test_validate_refuses_the_weak_level_without_opt_in(tmp_path):
    code, out = _validate(tmp_path, "def reward(prompts, completions, **kw):\n    return [1.0]\n", "--level", "process")
    assert (code, out["verdict"], out["stage"]) == (2, "error", "sandbox")
    assert "allow_weak" in out["reason"]


# -- the project's own rewards pass the dry run --------------------------------------------------------------
def _base_reward_source(name: str) -> str:
    """answers.py and base.py as one standalone module: exactly what an exported reward module carries."""
    from rewardsearch.rewards.export import _body

    return _body("rewardsearch.tasks", "answers.py") + "\n\n" + _body("rewardsearch.rewards", "base.py") + (
        f"\n\n_entry = {name}\n"
    )


@pytest.mark.parametrize("name", ["exact_format_reward", "approx_format_reward", "answer_reward"])
def test_base_rewards_pass_the_checks(name):
    spec = RewardSpec(name=name, source=_base_reward_source(name))
    results = check_reward(spec, SandboxConfig(), SAMPLES)
    assert [(r.stage, r.ok) for r in results] == [("static", True), ("probe", True)], results[-1].reason


EVOLVE_GENOMES = [  # together: every extractor, match kind, format term and optional gene of evolve.py
    {"extract": "solution", "match": {"kind": "exact"}, "correct": 2.0, "wrong": -0.5, "missing": 0.0,
     "format": [{"kind": "tag_once", "w": 0.5}, {"kind": "layout", "w": 0.25}], "length": None,
     "repetition": None, "steps": None, "spam_guard": {"max_numbers": 1}},
    {"extract": "last_number", "match": {"kind": "tolerance", "tol": 0.01}, "correct": 1.0, "wrong": 0.0,
     "missing": -0.5, "format": [{"kind": "solution_block", "w": 1.0}], "length": {"target": 200, "w": 0.5},
     "repetition": {"w": 1.0}, "steps": None, "spam_guard": None},
    {"extract": "solution_else_last", "match": {"kind": "graded", "tiers": [[0.1, 0.5], [0.25, 0.2]]},
     "correct": 3.0, "wrong": -1.0, "missing": -1.0, "format": [{"kind": "thinking_block", "w": 0.25},
     {"kind": "solution_numeric", "w": 0.5}], "length": None, "repetition": None,
     "steps": {"w": 0.2, "cap": 3}, "spam_guard": None},
    {"extract": "answer_phrase", "match": {"kind": "exact"}, "correct": 1.0, "wrong": -0.25, "missing": 0.0,
     "format": [], "length": {"target": 800, "w": 1.0}, "repetition": {"w": 2.0}, "steps": {"w": 0.1, "cap": 5},
     "spam_guard": {"max_numbers": 3}},
]  # fmt: skip


@pytest.mark.parametrize("genome", EVOLVE_GENOMES, ids=lambda g: g["extract"])
def test_evolve_rewards_pass_the_checks(genome):
    spec = RewardSpec(name="reward", source=render(genome, "reward"))
    results = check_reward(spec, SandboxConfig(), SAMPLES)
    assert [(r.stage, r.ok) for r in results] == [("static", True), ("probe", True)], results[-1].reason


def test_latency_budget_rejects_slow_rewards():
    spec = make("return [float(len(c[0]['content']) % 3) for c in completions]")
    result = dry_run(spec, SandboxConfig(latency_budget_ms=0.01), SAMPLES)
    assert not result.ok and result.reason.startswith("p99 call latency")
