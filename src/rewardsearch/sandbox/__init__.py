"""Sandbox: the static check, the isolated worker, the sandboxed TRL callable and the probe suite.

    results = check_reward(spec, cfg.sandbox, samples)  # [static] or [static, load|probe]
    reward = SandboxedReward(spec, cfg.sandbox)         # GRPOTrainer(reward_funcs=[reward, ...])
    resolve_level(cfg.sandbox)                          # "strict" | "landlock" | "seccomp" | "process"

Candidate code never runs in the calling process. The layers, each stating what it guarantees and what it
does not: `static.py` (AST check), `isolation.py` (namespaces, private uid, Landlock, seccomp) and
`levels.py` (which of them this machine offers), `worker.py` (zygote, a fresh process per call, Python
guards), `runner.py` (limits, deadlines, result checks, failure rule, quarantine), `probe.py` (dry run).
"""

from __future__ import annotations

from rewardsearch.config import SandboxConfig
from rewardsearch.rewards.spec import RewardSpec
from rewardsearch.sandbox.levels import SandboxUnavailable, describe_machine, resolve_level
from rewardsearch.sandbox.probe import CheckResult, dry_run
from rewardsearch.sandbox.runner import SandboxedReward
from rewardsearch.sandbox.static import ALLOWED_MODULES, StaticResult, static_check
from rewardsearch.tasks.answers import TAGS, AnswerFormat

__all__ = [
    "ALLOWED_MODULES",
    "CheckResult",
    "SandboxUnavailable",
    "SandboxedReward",
    "StaticResult",
    "check_reward",
    "describe_machine",
    "dry_run",
    "resolve_level",
    "static_check",
]


def check_reward(
    spec: RewardSpec, cfg: SandboxConfig, samples: list[tuple[str, str]], skip_static: bool = False,
    fmt: AnswerFormat = TAGS,
) -> list[CheckResult]:
    """Static check, then the sandboxed dry run (probes written in answer format `fmt`); the list ends at the
    first stage that fails.

    `skip_static` is a testing aid (`validate --skip-static`): it exercises the OS boundary alone.
    """
    if skip_static:
        return [dry_run(spec, cfg, samples, fmt=fmt)]
    static = static_check(spec.source, spec.function_name)
    first = CheckResult(
        "static",
        static.ok,
        static.reason,
        details={"line": static.line, "rule": static.rule} if not static.ok else {},
    )
    if not static.ok:
        return [first]
    return [first, dry_run(spec, cfg, samples, fmt=fmt)]
