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
from rewardsearch.tasks.answers import TAGS, AnswerFormat
from rewardsearch.tasks.base import Problem

if TYPE_CHECKING:
    from rewardsearch.config import ProposerConfig
    from rewardsearch.store import Store


@dataclass
class HistoryEntry:
    """One earlier candidate as the proposer may see it: its code, its fate and (if trained) its dev metrics."""

    spec: RewardSpec
    state: str                                # evaluated | rejected | failed | quarantined | ...
    reason: str | None = None                 # why it was rejected or failed
    dev_accuracy: float | None = None
    dev_extraction_rate: float | None = None
    dev_ci95: list[float] | None = None       # Wilson 95% interval of dev accuracy
    dev_n: int | None = None                  # dev problems evaluated
    flags: list[str] = field(default_factory=list)
    curves: dict[str, float] = field(default_factory=dict)   # run means of TRL's logged scalars
    shift: dict[str, Any] = field(default_factory=dict)      # base model -> trained, training trend (`search/hacking.py`)


MAX_NOTES = 5      # notes of one kind a refill ask carries (the round's rejections; the last ask's parse drops)
NOTE_CHARS = 300   # characters of one note's reason


def clip_note(text: str) -> str:
    """One note's text on one line, at most NOTE_CHARS characters."""
    text = " ".join(text.split())
    return text if len(text) <= NOTE_CHARS else text[: NOTE_CHARS - 3] + "..."


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
    # the baseline's dev eval (accuracy, ci95, extraction_rate, n) with its curves, flags and shift (as HistoryEntry)
    baseline_dev: dict[str, Any] | None = None
    feedback: bool = True                        # False in `random` mode: no history, no baseline numbers
    feedback_top: int = 5                        # how many of the ranked history a prompt shows as best ...
    feedback_bottom: int = 3                     # ... and as worst
    score_bound: float = 100.0                   # |score| above this is rejected by the sandbox
    answer_format: AnswerFormat = TAGS           # the task's: proposers that write code read the answer with it
    # a refill ask (`search.refills`): its mark, and one line per candidate of this round that was rejected
    # ("your previous candidate X was rejected: <reason>; fix it"); a proposer that writes code shows them
    refill: str | None = None
    notes: list[str] = field(default_factory=list)


class Proposer(Protocol):
    """`propose` returns up to `n` new candidates whose ids are not in `ctx.existing_ids`.

    Optional: an `exhausted` attribute (str | None) saying why the proposer can give no more (budget spent,
    cassette or directory used up); the loop stops the run cleanly when it is set before a round. And
    `shown_examples(fmt)`: the rewards its prompt shows as examples for a task answered in format `fmt`; a
    candidate that behaves exactly like one (same scores on every probe) is a copy, rejected by the loop's
    de-duplication like a twin of an earlier candidate.
    """

    name: str

    def propose(self, ctx: RoundContext, n: int) -> list[RewardSpec]:
        """Up to `n` new candidates whose ids are not in `ctx.existing_ids` (fewer only when it runs dry)."""


class ProposerNotAvailable(RuntimeError):
    """The configured proposer cannot be built (unknown name, not implemented, missing dependency)."""


class ProposerError(RuntimeError):
    """Proposing failed for good (endpoint down after retries, bad credentials, broken cassette).

    `partial` holds the candidates obtained before the failure: the loop keeps them, and `resume` asks only for
    the rest of the round. The message is one line naming the endpoint and what to fix.
    """

    def __init__(self, message: str, partial: list[RewardSpec] | None = None) -> None:
        super().__init__(message)
        self.partial = list(partial or [])


PROPOSERS: dict[str, str] = {
    "evolve": "rewardsearch.propose.evolve:EvolveProposer",
    "llm": "rewardsearch.propose.llm:LLMProposer",
    "replay": "rewardsearch.propose.replay:ReplayProposer",
    "files": "rewardsearch.propose.files:FilesProposer",
}


def make_proposer(cfg: ProposerConfig, store: Store | None = None) -> Any:
    """The proposer named by `cfg.name`, built from its config section.

    Proposers that keep an audit trail (`uses_store = True`: llm, replay) also get the run store, where they
    write every request and answer (`proposer_calls`) and read what the run has spent.
    """
    path = PROPOSERS.get(cfg.name)
    if path is None:
        known = ", ".join(sorted(PROPOSERS))
        guess = difflib.get_close_matches(cfg.name, list(PROPOSERS), n=1)
        hint = f" (did you mean '{guess[0]}'?)" if guess else ""
        raise ProposerNotAvailable(f"proposer.name={cfg.name!r} is not available{hint}; available: {known}")
    module, attr = path.split(":")
    cls = getattr(importlib.import_module(module), attr)
    return cls(cfg, store=store) if getattr(cls, "uses_store", False) else cls(cfg)
