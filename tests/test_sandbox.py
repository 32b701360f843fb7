# Run: python -m pytest tests/test_sandbox.py -q
"""Sandbox: static rejections, the worker's runtime containment, the failure rule, quarantine and the probe
suite.

Every runtime test starts a real worker subprocess; the static layer is bypassed on purpose (the runner is
called directly) so that each hostile source actually runs. The test process itself surviving is part of every
test.
"""

from __future__ import annotations

import os
import pickle
import textwrap
import threading
import time
from pathlib import Path

import pytest

from rewardsearch.config import SandboxConfig
from rewardsearch.rewards.spec import RewardSpec
from rewardsearch.sandbox import SandboxedReward, check_reward, dry_run, static_check
from rewardsearch.sandbox import static as static_mod
from rewardsearch.sandbox import worker as worker_mod
from rewardsearch.sandbox.runner import PARENT_GRACE_S, WORKER_ENV

# Small limits keep every test within a couple of seconds.
CFG = SandboxConfig(
    call_timeout_s=1.0, start_timeout_s=10.0, memory_mb=256, max_failures=3, score_bound=100.0
)
SIGNATURE = "def reward(prompts, completions, answer, **kwargs):\n"
SAMPLES = [("What is 2 + 3?", "5"), ("What is 7 * 6?", "42"), ("What is 10 - 13?", "-3")]


def make(body: str, header: str = "") -> str:
    """Source with `header` at top level and `body` as the entrypoint's body."""
    return textwrap.dedent(header) + SIGNATURE + textwrap.indent(textwrap.dedent(body), "    ")


def batch(*texts: str) -> dict:
    return {
        "prompts": [[{"role": "user", "content": "q"}] for _ in texts],
        "completions": [[{"role": "assistant", "content": t}] for t in texts],
        "answer": ["5"] * len(texts),
    }


@pytest.fixture
def run():
    """`run(source, **cfg_overrides)` -> a started-on-demand SandboxedReward, closed after the test."""
    made: list[SandboxedReward] = []

    def _make(source: str, **overrides) -> SandboxedReward:
        cfg = CFG.model_copy(update=overrides)
        reward = SandboxedReward(RewardSpec(name="reward", source=source), cfg)
        made.append(reward)
        return reward

    yield _make
    for reward in made:
        reward.close()


LEGIT = '''
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

SOLUTION = re.compile(r"<solution>(.*?)</solution>", re.DOTALL)


@dataclass
class Parsed:
    answer: str | None
    formatted: bool


def parse(text: str) -> Parsed:
    """Extract the solution; mentions __init__ only in a docstring."""
    m = SOLUTION.search(text)
    return Parsed(m.group(1).strip() if m else None, m is not None)


def reward(prompts, completions, answer, **kwargs) -> list[float | None]:
    out: list[float | None] = []
    for completion, gold in zip(completions, answer):
        p = parse(completion[0]["content"])
        if p.answer is None:
            out.append(0.0)
            continue
        closeness = difflib.SequenceMatcher(None, p.answer, gold).ratio()
        out.append(1.0 + 0.5 * closeness if p.answer == gold else 0.5 * closeness)
    return out
'''


# -- static layer --------------------------------------------------------------------------------------------
def test_legit_reward_passes_static_check():
    assert static_check(LEGIT, "reward").ok


@pytest.mark.parametrize(
    ("source", "line", "rule"),
    [
        ("import os\n" + SIGNATURE + "    return []\n", 1, "import"),
        ("x = 1\nimport ｏｓ\n" + SIGNATURE + "    return []\n", 2, "import"),
        ("from . import helpers\n" + SIGNATURE + "    return []\n", 1, "import"),
        (SIGNATURE + "    return [].__class__.__base__.__subclasses__()\n", 2, "dunder"),
        (SIGNATURE + "    return getattr(prompts, 'copy')()\n", 2, "forbidden-name"),
        (SIGNATURE + "    open('/etc/passwd')\n    return []\n", 2, "forbidden-name"),
        ("import collections\nx = collections._sys\n" + SIGNATURE + "    return []\n", 2, "private-attr"),
        ("import typing\nx = typing.sys.modules\n" + SIGNATURE + "    return []\n", 2, "module-attr"),
        ("from typing import sys\n" + SIGNATURE + "    return []\n", 1, "module-attr"),
        (SIGNATURE + "    try:\n        1 / 0\n    except Exception as e:\n"
         "        e.__traceback__.tb_frame.f_back\n", 5, "frame-attr"),
        (SIGNATURE + "    def g():\n        yield 1\n    return g().gi_frame\n", 4, "frame-attr"),
        (SIGNATURE + "    return '{0.__class__}'.format(prompts)\n", 2, "dunder"),
        ("from operator import attrgetter\n" + SIGNATURE + "    return []\n", 1, "forbidden-attr"),
        (SIGNATURE + "    return [0.0] *\n", 2, "syntax"),
    ],
    ids=["os", "fullwidth-os", "relative", "subclasses", "getattr", "open", "private-module-attr",
         "typing.sys", "from-typing-import-sys", "traceback-frame", "gi_frame", "format-dunder", "attrgetter",
         "syntax"],
)  # fmt: skip
def test_static_rejects_with_line_and_rule(source, line, rule):
    result = static_check(source, "reward")
    assert not result.ok
    assert (result.line, result.rule) == (line, rule), result.reason
    assert result.reason.startswith(f"line {line}: ")


def test_static_rejects_frame_walk_attribute():
    result = static_check(SIGNATURE + "    f = kwargs['frame']\n    return f.f_back\n", "reward")
    assert (result.ok, result.line, result.rule) == (False, 3, "frame-attr")


def test_static_import_reason_lists_allowlist():
    result = static_check("import socket\n" + SIGNATURE + "    return []\n", "reward")
    assert "import of 'socket' is not allowed (allowed: __future__, re, math" in result.reason


@pytest.mark.parametrize(
    "source",
    [
        "def reward(prompts, completions):\n    return []\n",  # no **kwargs
        "async def reward(prompts, completions, **kwargs):\n    return []\n",
        "reward = lambda prompts, completions, **kwargs: []\n",
        "def other(prompts, completions, **kwargs):\n    return []\n",
    ],
    ids=["no-kwargs", "async", "lambda", "missing"],
)
def test_static_rejects_bad_entrypoint(source):
    result = static_check(source, "reward")
    assert (result.ok, result.rule) == (False, "entrypoint")


def test_static_allows_dunder_methods_in_classes_only():
    cls = textwrap.dedent("""
        class A:
            def __init__(self):
                self.x = 1

        class B(A):
            def __init__(self):
                super().__init__()
    """)
    assert static_check(cls + SIGNATURE + "    return []\n", "reward").ok
    top = "def __getattr__(name):\n    return 1\n" + SIGNATURE + "    return []\n"
    assert static_check(top, "reward").rule == "dunder"


def test_worker_copies_of_allowlists_match_static():
    assert worker_mod.ALLOWED_MODULES == static_mod.ALLOWED_MODULES
    assert worker_mod.HIDDEN_ATTRS == static_mod.FORBIDDEN_ATTRS


# -- runner: legitimate code ---------------------------------------------------------------------------------
def test_legit_reward_scores_correctly(run):
    reward = run(LEGIT)
    scores = reward(**batch("<solution>5</solution>", "<solution>7</solution>", "no tags"))
    assert scores == [1.5, 0.0, 0.0]
    assert reward.__name__ == "reward"
    assert reward.failures == 0 and reward.stats["calls"] == 1


def test_trainer_kwargs_are_dropped_and_columns_forwarded(run):
    reward = run(make("return [float(len(kwargs)) + len(answer) for _ in completions]"))
    scores = reward(
        **batch("a"),
        trainer_state=object(),
        log_metric=print,
        completion_ids=[[1]],
        level=[3],
        obj=[object()],
    )
    assert scores == [2.0]  # answer + level; obj is not JSON-serializable
    assert reward.dropped_kwargs == {"obj"}


def test_huge_stdout_does_not_corrupt_protocol(run):
    reward = run(make("for _ in range(50):\n    print('x' * 1_000_000)\nreturn [1.0 for _ in completions]"))
    assert reward(**batch("a", "b")) == [1.0, 1.0]


def test_mutating_completions_is_harmless_to_caller(run):
    reward = run(make("completions[0][0]['content'] = 'hacked'\ncompletions.clear()\nreturn [0.5]"))
    args = batch("original")
    assert reward(**args) == [0.5]
    assert args["completions"] == [[{"role": "assistant", "content": "original"}]]


def test_worker_environment_is_minimal(run, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-leak")
    reward = run(make("return [1.0 for _ in completions]"))
    assert reward(**batch("a")) == [1.0]
    pid = reward.worker_pid
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert {e.decode() for e in environ if e} == {f"{k}={v}" for k, v in WORKER_ENV.items()}
    assert os.readlink(f"/proc/{pid}/cwd") == os.path.realpath(reward._tmpdir)  # private mkdtemp, not ours
    limits = Path(f"/proc/{pid}/limits").read_text()
    assert f"{CFG.memory_mb * 1024 * 1024}" in next(
        line for line in limits.splitlines() if "address space" in line
    )


def test_import_of_os_fails_at_runtime(run):
    reward = run(make("return [1.0 for _ in completions]", header="import os\n"))
    assert reward(**batch("a")) == [None]
    assert reward.failures == 1 and reward.last_failure_kind == "load"
    assert "import of 'os' is not allowed" in reward.last_error


# -- runner: failures return all-None and count --------------------------------------------------------------
def test_infinite_loop_hits_deadline(run):
    reward = run(make("while True:\n    pass"))
    reward.start()  # worker startup is not part of the call's deadline
    started = time.monotonic()
    assert reward(**batch("a", "b")) == [None, None]
    assert time.monotonic() - started < CFG.call_timeout_s + PARENT_GRACE_S + 1.0  # generous: loaded CI
    assert (reward.failures, reward.timeouts) == (1, 1)
    assert "call child killed" in reward.last_error
    # the zygote killed only that call's child and survives: the next call needs no new worker
    pid = reward.worker_pid
    assert pid is not None
    assert reward(**batch("a")) == [None] and reward.worker_pid == pid


def test_loop_swallowing_base_exception_is_still_killed(run):
    reward = run(make("while True:\n    try:\n        pass\n    except BaseException:\n        pass"))
    reward.start()
    started = time.monotonic()
    assert reward(**batch("a")) == [None]
    assert time.monotonic() - started < CFG.call_timeout_s + PARENT_GRACE_S + 1.0  # generous: loaded CI
    assert reward.timeouts == 1


def test_sleep_is_unavailable(run):
    reward = run(make("import time\ntime.sleep(30)\nreturn [1.0]"))
    started = time.monotonic()
    assert reward(**batch("a")) == [None]
    assert time.monotonic() - started < 5.0
    assert "import of 'time' is not allowed" in reward.last_error


def test_huge_allocation_hits_memory_limit(run):
    reward = run(make("x = bytearray(4 * 1024 ** 3)\nreturn [1.0]"))
    assert reward(**batch("a")) == [None]
    assert "MemoryError" in reward.last_error


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("import sys\nsys.exit(0)", "import of 'sys' is not allowed"),
        ("import os\nos._exit(0)", "import of 'os' is not allowed"),
        ("raise SystemExit(3)", "SystemExit"),
        ("raise KeyboardInterrupt", "KeyboardInterrupt"),
        ("return eval('1')", "NameError"),
        ("return open('/etc/hostname').read()", "NameError"),
    ],
    ids=["sys.exit", "os._exit", "SystemExit", "KeyboardInterrupt", "eval", "open"],
)
def test_exits_and_blocked_builtins_fail_cleanly(run, body, needle):
    reward = run(make(body))
    assert reward(**batch("a", "b")) == [None, None]
    assert reward.failures == 1
    assert needle in reward.last_error
    assert reward(**batch("a")) == [None]  # the worker (or a fresh one) still answers
    assert reward.failures == 2


@pytest.mark.parametrize(
    "result",
    [
        "[float('nan')]", "[float('inf')]", "['1.0']", "{'a': 1.0}", "[1.0, 2.0]", "[]", "[1000.0]",
        "[10 ** 400]", "[[1.0]]", "(x for x in [1.0])", "None",
    ],
    ids=["nan", "inf", "string", "dict", "too-long", "too-short", "out-of-range", "huge-int", "nested",
         "generator", "none"],
)  # fmt: skip
def test_bad_results_fail_the_whole_batch(run, result):
    reward = run(make(f"return {result}"))
    assert reward(**batch("a")) == [None]
    assert reward.failures == 1 and reward.last_failure_kind == "error"


def test_per_item_none_is_allowed(run):
    reward = run(make("return [None, 1, True]"))
    assert reward(**batch("a", "b", "c")) == [None, 1.0, 1.0]
    assert reward.failures == 0


def test_worker_crash_mid_call_is_a_failure(run):
    reward = run(make("while True:\n    pass"), call_timeout_s=5.0)
    reward.start()
    pid = reward.worker_pid
    threading.Timer(0.3, os.kill, (pid, 9)).start()
    started = time.monotonic()
    assert reward(**batch("a")) == [None]
    assert time.monotonic() - started < 2.0
    assert reward.last_failure_kind == "crash" and "signal 9" in reward.last_error


def test_worker_dead_while_idle_restarts_without_failure(run):
    reward = run(make("return [1.0 for _ in completions]"))
    assert reward(**batch("a")) == [1.0]
    os.kill(reward.worker_pid, 9)
    time.sleep(0.1)
    assert reward(**batch("a")) == [1.0]
    assert (reward.failures, reward.stats["restarts"]) == (0, 1)


def test_quarantine_after_max_failures_stops_running_code(run):
    reward = run(make("raise ValueError('boom')"), max_failures=2)
    for _ in range(2):
        assert reward(**batch("a")) == [None]
    assert reward.quarantined and reward.worker_pid is None
    assert reward(**batch("a", "b")) == [None, None]
    assert reward.worker_pid is None  # no worker was started for the quarantined call
    assert reward.stats["calls"] == 2 and reward.stats["skipped"] == 1
    assert "ValueError: boom (reward line 2)" in reward.last_error


def test_stats_and_close(run):
    reward = run(make("return [0.0 for _ in completions]"))
    for _ in range(3):
        reward(**batch("a"))
    stats = reward.stats
    assert stats["calls"] == 3 and stats["p99_latency_ms"] >= stats["p50_latency_ms"] > 0
    tmp = reward._tmpdir
    reward.close()
    assert reward.worker_pid is None and not os.path.exists(tmp)


def test_pickling_gives_a_fresh_unstarted_reward(run):
    reward = run(make("return [0.0 for _ in completions]"))
    reward(**batch("a"))
    copy = pickle.loads(pickle.dumps(reward))
    try:
        assert copy.worker_pid is None and copy.__name__ == "reward"
        assert copy(**batch("a")) == [0.0]
        assert copy.worker_pid != reward.worker_pid
    finally:
        copy.close()


# -- probe suite ---------------------------------------------------------------------------------------------
GOOD = """
import re

def reward(prompts, completions, answer, **kwargs):
    scores = []
    for c, gold in zip(completions, answer):
        text = c if isinstance(c, str) else c[0]["content"]
        m = re.fullmatch(r"<thinking>(.+?)</thinking><solution>(.+?)</solution>", text, re.DOTALL)
        if m is None:
            scores.append(0.0)
        else:
            scores.append(1.0 + (1.0 if m.group(2).strip() == gold else 0.0))
    return scores
"""


def test_dry_run_accepts_good_reward():
    result = dry_run(RewardSpec(name="reward", source=GOOD), CFG, SAMPLES)
    assert result.ok, result.reason
    assert (result.stage, result.flags) == ("probe", [])
    assert result.details["p99_latency_ms"] >= result.details["p50_latency_ms"] > 0


def test_dry_run_rejects_constant_reward():
    result = dry_run(
        RewardSpec(name="reward", source=make("return [0.5 for _ in completions]")), CFG, SAMPLES
    )
    assert not result.ok and "constant reward gives GRPO no signal" in result.reason


def test_dry_run_flags_format_only_reward():
    source = make("return [1.0 if '<solution>' in c[0]['content'] else 0.0 for c in completions]", header="")
    result = dry_run(RewardSpec(name="reward", source=source), CFG, SAMPLES)
    assert result.ok
    assert {"format_only", "golden_pair:wrong", "number_spam", "plain_form_fails"} <= set(result.flags)
    assert result.details["evidence"]["format_only"]["kind"] == "empty_formatted"


# What real answers hold beside the answer, read by rewards a proposer is asked for (propose/templates/item/
# ideas.txt). Before the `worked`, `worked_wrong`, `repeated` and `trailing` probes, each of these scored every
# probe alike and was rejected as constant.
READS_MORE_THAN_THE_ANSWER = {
    "calculation_lines": "return [float(c[0]['content'].count(' = ')) for c in completions]",
    "gold_in_thinking": ("return [1.0 if g in c[0]['content'].split('</thinking>')[0].split('<thinking>')[-1] "
                         "else 0.0 for c, g in zip(completions, answer)]"),
    "repeated_lines": ("return [-float(len(c[0]['content'].splitlines()) - len(set(c[0]['content'].splitlines())))"
                       " for c in completions]"),
    "text_after_answer": ("return [-1.0 if c[0]['content'].split('</solution>')[-1].strip() and '</solution>' in "
                          "c[0]['content'] else 0.0 for c in completions]"),
}


@pytest.mark.parametrize("body", READS_MORE_THAN_THE_ANSWER.values(), ids=READS_MORE_THAN_THE_ANSWER)
def test_dry_run_gives_signal_to_rewards_that_read_the_reasoning(body):
    result = dry_run(RewardSpec(name="reward", source=make(body)), CFG, SAMPLES)
    assert result.ok, result.reason
    realistic = {k: result.details["mean_by_kind"][k] for k in ("correct", "worked", "repeated", "trailing")}
    assert len(set(realistic.values())) > 1, realistic


def test_dry_run_rejects_index_dependence():
    source = make("return [float(i % 3) for i in range(len(completions))]")
    result = dry_run(RewardSpec(name="reward", source=source), CFG, SAMPLES)
    assert not result.ok and "index dependence" in result.reason


def test_check_reward_stops_at_static():
    spec = RewardSpec(name="reward", source="import os\n" + GOOD)
    results = check_reward(spec, CFG, SAMPLES)
    assert [(r.stage, r.ok) for r in results] == [("static", False)]
    assert results[0].details == {"line": 1, "rule": "import"}


def test_check_reward_reports_load_failure():
    spec = RewardSpec(name="reward", source=GOOD + "\nraise RuntimeError('at import')\n")
    results = check_reward(spec, CFG, SAMPLES)
    assert [(r.stage, r.ok) for r in results] == [("static", True), ("load", False)]
    assert "RuntimeError: at import" in results[1].reason
