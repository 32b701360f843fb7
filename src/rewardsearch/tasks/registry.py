"""Where task names come from: the built-ins, the entry-point group `rewardsearch.tasks`, and
`package.module:Class` paths. Classes are imported only when their name is asked for.

A third-party package registers a task in its `pyproject.toml`:

    [project.entry-points."rewardsearch.tasks"]
    mytask = "mypackage.tasks:MyTask"

and `task.name=mytask` then picks it. The class must offer `from_config(cfg: TaskConfig, seed: int)`
returning an object that satisfies `rewardsearch.tasks.base.Task` (see docs/tasks.md).
"""

from __future__ import annotations

import difflib
import importlib
from importlib import metadata
from typing import Any

ENTRY_POINT_GROUP = "rewardsearch.tasks"

BUILTIN: dict[str, str] = {
    "arith": "rewardsearch.tasks.arith:ArithTask",
    "gsm8k": "rewardsearch.tasks.gsm8k:GSM8KTask",
    "file": "rewardsearch.tasks.data:FileTask",
    "hf": "rewardsearch.tasks.data:HFTask",
}


def available() -> dict[str, str]:
    """Every registered name and its `module:attr` target; built-ins win over a plugin of the same name."""
    found = {ep.name: ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    return {**found, **BUILTIN}


def _import(target: str, name: str) -> Any:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ValueError(f"task.name={name!r}: expected package.module:Class")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"task.name={name!r}: cannot import {module_name!r} ({exc})") from None
    try:
        cls = getattr(module, attr)
    except AttributeError:
        raise ValueError(f"task.name={name!r}: module {module_name!r} has no {attr!r}") from None
    if not callable(getattr(cls, "from_config", None)):
        raise ValueError(f"task.name={name!r}: {target} has no from_config(cfg, seed); see docs/tasks.md")
    return cls


def check_name(name: str) -> None:
    """Raise a one-line error unless `name` is registered or has the `package.module:Class` shape."""
    if ":" in name:
        module_name, _, attr = name.partition(":")
        if not module_name or not attr:
            raise ValueError("expected package.module:Class")
        return
    known = available()
    if name not in known:
        guess = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {guess[0]!r}?)" if guess else ""
        raise ValueError(f"unknown task{hint}; choose one of {', '.join(sorted(known))} or give package.module:Class")


def resolve(name: str) -> Any:
    """The task class for `name`: a registered name or a `package.module:Class` path."""
    try:
        check_name(name)
    except ValueError as exc:
        raise ValueError(f"task.name={name!r}: {exc}") from None
    return _import(name if ":" in name else available()[name], name)
