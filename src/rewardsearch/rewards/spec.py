"""`RewardSpec`: one candidate reward as a plain record (its id is a hash of its normalized source)."""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import asdict, dataclass, field
from typing import Any


def normalize_source(source: str) -> str:
    """Source with comments, docstrings and formatting removed, so cosmetic edits keep the id.

    Falls back to whitespace-collapsed text when the source does not parse (it will be rejected later,
    but still needs a stable id to be stored under).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return re.sub(r"\s+", " ", source).strip()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    return ast.unparse(tree)


def reward_id(source: str) -> str:
    return hashlib.sha256(normalize_source(source).encode()).hexdigest()[:12]


@dataclass
class RewardSpec:
    """A candidate reward function.

    `source` defines `entrypoint(prompts, completions, answer, **kwargs) -> list[float | None]`.
    `origin` is the proposer's name (`evolve`, `llm`, `files`, `replay`), `base`, or `prompt` (an example a prompt shows).
    `meta` carries proposer-private data (e.g. the evolve genome) through the store.
    """

    name: str
    source: str
    description: str = ""
    origin: str = "unknown"
    round: int = 0
    parents: list[str] = field(default_factory=list)
    entrypoint: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return reward_id(self.source)

    @property
    def function_name(self) -> str:
        return self.entrypoint or self.name

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["id"] = self.id
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RewardSpec:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})
