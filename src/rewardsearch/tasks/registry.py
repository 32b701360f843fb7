"""Where task names come from: the built-ins, the entry-point group `rewardsearch.tasks`, and
`package.module:Class` paths. Classes are imported only when their name is asked for.

A third-party package registers a task in its `pyproject.toml`:

    [project.entry-points."rewardsearch.tasks"]
    mytask = "mypackage.tasks:MyTask"

and `task.name=mytask` then picks it. The class must offer `from_config(cfg: TaskConfig, seed: int)`
returning an object that satisfies `rewardsearch.tasks.base.Task` (see docs/tasks.md).

`READS` says which `task.*` source settings each built-in reads; config validation refuses the others
(`ignored_setting`), so a setting never silently does nothing.
"""

from __future__ import annotations

import difflib
import importlib
from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rewardsearch.config import TaskConfig

ENTRY_POINT_GROUP = "rewardsearch.tasks"

BUILTIN: dict[str, str] = {
    "arith": "rewardsearch.tasks.arith:ArithTask",
    "gsm8k": "rewardsearch.tasks.gsm8k:GSM8KTask",
    "file": "rewardsearch.tasks.data:FileTask",
    "hf": "rewardsearch.tasks.data:HFTask",
}


# The source settings of `TaskConfig` each built-in reads (`name`, `answer_format` and `check` every task reads;
# `arith` is its own section, which presets fill whatever task is picked, so it is left out of the rule).
SOURCE_FIELDS = ("data_dir", "dev_pool", "path", "test_path", "dataset", "config", "train_split", "test_split",
                 "test_pool", "question_field", "answer_field")  # fmt: skip
_COLUMNS = ("question_field", "answer_field")
READS: dict[str, tuple[str, ...]] = {
    "arith": (),  # sizes are task.arith.train_size / dev_size / test_size
    "gsm8k": ("data_dir", "dev_pool"),
    "file": ("path", "test_path", "dev_pool", "test_pool", *_COLUMNS),
    "hf": ("dataset", "config", "train_split", "test_split", "dev_pool", "test_pool", *_COLUMNS),
}
# Where the setting someone gave to the wrong task lives for that task, when there is one.
_INSTEAD: dict[tuple[str, str], str] = {
    ("arith", "dev_pool"): "task.arith.dev_size", ("arith", "test_pool"): "task.arith.test_size",
    ("arith", "data_dir"): "task.name=gsm8k", ("gsm8k", "path"): "task.data_dir or task.name=file",
    ("file", "data_dir"): "task.path", ("hf", "path"): "task.name=file",
    ("file", "dataset"): "task.name=hf",
}  # fmt: skip


def ignored_setting(cfg: TaskConfig) -> str | None:
    """A one-line error for the first source setting of `cfg` that its task ignores, else None.

    A setting counts as given when it differs from its default. Only built-ins are checked: what a plugin reads
    is its own business. `test_pool` is read only where no test set is given (`task.test_path` for file,
    `task.test_split` for hf).
    """
    reads = READS.get(cfg.name)
    if reads is None:
        return None
    defaults = type(cfg).model_fields
    for field in SOURCE_FIELDS:
        value = getattr(cfg, field)
        if value == defaults[field].default:
            continue
        if field not in reads:
            instead = _INSTEAD.get((cfg.name, field))
            hint = f"use {instead}" if instead else "it reads " + (", ".join(f"task.{f}" for f in reads) or "task.arith.*")
            return f"task.{field}={value!r}: task.name={cfg.name} ignores it ({hint})"
        test_set = cfg.test_path if cfg.name == "file" else cfg.test_split
        if field == "test_pool" and test_set is not None:
            given = "task.test_path" if cfg.name == "file" else "task.test_split"
            return (f"task.test_pool={value!r}: ignored while {given}={test_set!r} gives the test set "
                    f"(or set {given}=null to carve a seeded test slice out of train)")  # fmt: skip
    return None


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
