"""Which sandbox level this machine offers, which one a config asks for, and the plan a worker applies.

    level = resolve_level(cfg)          # "strict" | "landlock" | "seccomp" | "process"; raises SandboxUnavailable
    plan = plan_for(level)              # the JSON the worker's isolate() applies

Detection runs `worker.py --probe` once per driver process (about 0.3 s): a fresh interpreter that applies
each level's real setup in a throw-away child and checks it holds (socket() denied, a read outside the
stdlib denied). The result is cached and logged; `describe_machine()` returns it for records.

`sandbox.level=auto` takes the strongest level available. An explicit level that is not available raises
`SandboxUnavailable` naming why. The weak level `process` (no OS isolation) raises unless
`sandbox.allow_weak=true`, and then logs a warning every time a worker starts at it.

What is NOT guaranteed: that a level detected at start stays available (a container policy changing under a
running process); each worker re-applies its plan and fails its load check loudly if it cannot.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import subprocess
import sys
from typing import Any

from rewardsearch.config import SandboxConfig
from rewardsearch.sandbox.isolation import LEVEL_MECHANISMS, LEVELS, WEAK_LEVELS, set_dumpable

log = logging.getLogger("rewardsearch.sandbox")
_PROBE_TIMEOUT_S = 60.0
# Private uids for root-started workers: far above any real account, below the 32-bit overflow ids.
_UID_BASE, _UID_SPAN = 1 << 24, 1 << 28


class SandboxUnavailable(RuntimeError):
    """The configured sandbox level cannot run on this machine (a setup problem, not a candidate's fault)."""


@functools.lru_cache(maxsize=1)
def describe_machine() -> dict[str, Any]:
    """What `worker.py --probe` found: root, landlock_abi, seccomp, arch, kernel, levels {name: None | why not}."""
    from rewardsearch.sandbox.runner import WORKER_ENV, WORKER_PATH

    try:
        out = subprocess.run(
            [sys.executable, "-I", "-S", str(WORKER_PATH), "--probe"],
            capture_output=True, env=WORKER_ENV, timeout=_PROBE_TIMEOUT_S, check=True,
        )  # fmt: skip
        found = json.loads(out.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        why = f"the level probe failed: {exc}"
        found = {"levels": {level: (None if level == "process" else why) for level in LEVELS}}
    available = [level for level in LEVELS if found["levels"].get(level) is None]
    found["available"] = available
    log.info(
        "sandbox levels available here: %s (root=%s, landlock_abi=%s, seccomp=%s)",
        ", ".join(available), found.get("root"), found.get("landlock_abi"), found.get("seccomp"),
    )  # fmt: skip
    return found


def resolve_level(cfg: SandboxConfig) -> str:
    """The level a worker runs at under `cfg`; raises SandboxUnavailable (see the module docstring)."""
    found = describe_machine()
    if cfg.level == "auto":
        level = found["available"][0]
    else:
        level = cfg.level
        why = found["levels"].get(level, "unknown level")
        if why is not None:
            raise SandboxUnavailable(
                f"sandbox.level={level!r} is not available here: {why}; available: {', '.join(found['available'])}"
            )
    if level in WEAK_LEVELS and not cfg.allow_weak:
        if cfg.level != "auto":
            raise SandboxUnavailable(
                f"sandbox.level={level!r} is the weak level (no OS isolation); set sandbox.allow_weak=true to use it"
            )
        reasons = "; ".join(f"{k}: {v}" for k, v in found["levels"].items() if v)
        raise SandboxUnavailable(
            f"only the weak sandbox level {level!r} (no OS isolation) is available here ({reasons}); "
            "set sandbox.allow_weak=true to run candidate code without it"
        )
    return level


def plan_for(level: str) -> dict[str, Any]:
    """The isolation plan of one worker (a fresh private uid each time when we are root)."""
    mechanisms = LEVEL_MECHANISMS[level]
    root = os.geteuid() == 0
    uid = _UID_BASE + secrets.randbelow(_UID_SPAN) if root and level not in WEAK_LEVELS else None
    return {
        "level": level,
        "namespaces": "namespaces" in mechanisms,
        "userns": "namespaces" in mechanisms and not root,
        "uid": uid,
        # Z plus one call child: a candidate can neither fork nor leave a thread behind (counted per uid,
        # so only meaningful for a uid no other process has)
        "nproc": 2 if uid is not None else None,
        "landlock": "landlock" in mechanisms,
        "seccomp": "seccomp" in mechanisms,
    }


@functools.lru_cache(maxsize=1)
def protect_parent() -> None:
    """Make this (driver or trainer) process non-dumpable, so a same-uid worker cannot read its environ or mem.

    Only for levels where the worker keeps our uid and has no Landlock: it costs core dumps and same-user
    debugger attach (py-spy) for this process.
    """
    try:
        set_dumpable(False)
        log.info("sandbox: this process is now non-dumpable (its /proc/%d/environ and mem are closed)", os.getpid())
    except OSError as exc:
        log.warning("sandbox: could not make this process non-dumpable: %s", exc)


def needs_parent_protection(plan: dict[str, Any]) -> bool:
    return plan["uid"] is None and not plan["landlock"] and not plan["namespaces"]
