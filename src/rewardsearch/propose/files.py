"""`files`: hand-written reward files, for the screening and statistics without any generation.

    rewardsearch run --preset smoke proposer.name=files proposer.path=my_rewards/

`proposer.path` is a directory of `.py` files, one reward each. The function called is the one named like the
file (`length_bonus.py` -> `length_bonus`), else the last top-level function taking `completions`; the
candidate's name is the file's stem, its description the first line of the module docstring. Files are taken
in name order, `n` per round, skipping any whose normalized source is already in the run; when none are left
the proposer is `exhausted` and the search ends after the round in hand. A file that fails the checks becomes a
rejected candidate with the reason, like any other.
"""

from __future__ import annotations

import ast
from pathlib import Path

from rewardsearch.config import ProposerConfig
from rewardsearch.propose.base import ProposerNotAvailable, RoundContext
from rewardsearch.propose.parse import find_entrypoint, slug
from rewardsearch.rewards.spec import RewardSpec


def _docline(source: str) -> str:
    try:
        doc = ast.get_docstring(ast.parse(source))
    except (SyntaxError, ValueError):
        return ""
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""


class FilesProposer:
    """See the module docstring."""

    name = "files"

    def __init__(self, cfg: ProposerConfig) -> None:
        self.root = Path(cfg.path or "")
        if not self.root.is_dir():
            raise ProposerNotAvailable(f"proposer.path={cfg.path!r} is not a directory of .py reward files")
        self.files = sorted(self.root.glob("*.py"))
        if not self.files:
            raise ProposerNotAvailable(f"proposer.path={cfg.path!r} holds no .py files")
        self.exhausted: str | None = None

    def propose(self, ctx: RoundContext, n: int) -> list[RewardSpec]:
        taken = set(ctx.existing_ids)
        out: list[RewardSpec] = []
        for f in self.files:
            if len(out) >= n:
                return out
            source = f.read_text(encoding="utf-8", errors="replace")
            name = slug(f.stem) or "reward"
            entry, _why = find_entrypoint(source, name)
            spec = RewardSpec(
                name=name, source=source, description=_docline(source), origin=self.name, round=ctx.round,
                entrypoint=entry or name, meta={"file": f.name},
            )
            if spec.id in taken:
                continue
            taken.add(spec.id)
            out.append(spec)
        self.exhausted = f"all {len(self.files)} reward files in {self.root} have been proposed"
        return out
