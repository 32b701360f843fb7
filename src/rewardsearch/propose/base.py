"""The `Proposer` protocol, the records a proposer receives, and the registry of proposers by name.

A proposer turns a `RoundContext` (task card, training samples, ranked history) into new `RewardSpec`s. It never
sees test-split numbers: the history is built from dev evaluations only (`search/ranking.py`). Implementations
are imported only when chosen, so optional dependencies stay optional.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from rewardsearch.rewards.spec import RewardSpec
from rewardsearch.tasks.base import Problem

if TYPE_CHECKING:
    from rewardsearch.config import ProposerConfig


@dataclass
class HistoryEntry:
    """One earlier candidate as the proposer may see it: its code, its fate and (if trained) its dev metrics."""

    spec: RewardSpec
    state: str                                # evaluated | rejected | failed | quarantined | ...
    reason: str | None = None                 # why it was rejected or failed
    dev_accuracy: float | None = None
    dev_extraction_rate: float | None = None
    flags: list[str] = field(default_factory=list)
    curves: dict[str, float] = field(default_factory=dict)   # run means of TRL's logged scalars


@dataclass
class RoundContext:
    """Everything a proposer needs for one round; `history` is ranked best-first (empty in `random` mode)."""

    round: int
    seed: int
    task_card: str
    samples: list[Problem]
    history: list[HistoryEntry] = field(default_factory=list)
    existing_ids: set[str] = field(default_factory=set)      # ids already in the run: proposals must be new
    baseline_accuracy: float | None = None


class Proposer(Protocol):
    name: str

    def propose(self, ctx: RoundContext, n: int) -> list[RewardSpec]:
        """Up to `n` new candidates whose ids are not in `ctx.existing_ids` (fewer only when it runs dry)."""


class ProposerNotAvailable(RuntimeError):
    """The configured proposer cannot be built (unknown name, not implemented, missing dependency)."""


PROPOSERS: dict[str, str] = {
    "evolve": "rewardsearch.propose.evolve:EvolveProposer",
}


def make_proposer(cfg: ProposerConfig) -> Any:
    """The proposer named by `cfg.name`, built from its config section."""
    path = PROPOSERS.get(cfg.name)
    if path is None:
        known = ", ".join(sorted(PROPOSERS))
        guess = difflib.get_close_matches(cfg.name, list(PROPOSERS), n=1)
        hint = f" (did you mean '{guess[0]}'?)" if guess else ""
        raise ProposerNotAvailable(f"proposer.name={cfg.name!r} is not available{hint}; available: {known}")
    module, attr = path.split(":")
    return getattr(importlib.import_module(module), attr)(cfg)
