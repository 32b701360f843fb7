"""Behavioural de-duplication: candidates that score the whole probe pool identically are one reward to GRPO.

Two rewards with different code but the same score on every probe completion (correct, wrong, unformatted,
empty, garbage, huge, ...) would most likely train alike, so only the first is trained; the later one is
rejected as `duplicate of <id>`. The signature is the probe stage's score vector (`dry_run` puts it in its
details as `scores`), computed in the sandbox worker: candidate code never runs in the driver. Scores are
rounded to 9 significant digits, the tolerance the probe suite itself uses for "the same score".

Not guaranteed: equal probe scores do not prove equal rewards on real policy samples (the pool is small), and
rewards differing only by a constant offset or scale (which GRPO's group normalization mostly cancels) are not
caught.
"""

from __future__ import annotations

import hashlib
import json

from rewardsearch.store import Store

_TWIN_STATES = ("accepted", "trained", "evaluated", "failed", "quarantined", "infra_failed")


def behaviour_key(scores: list[float | None]) -> str:
    rounded = [None if s is None else float(f"{s:.9g}") for s in scores]
    return hashlib.sha256(json.dumps(rounded).encode()).hexdigest()[:16]


def find_twin(store: Store, cid: str, key: str) -> str | None:
    """The id of an earlier candidate that passed the probes with the same behaviour key, if any."""
    for c in store.candidates():
        if c["id"] == cid or c["state"] not in _TWIN_STATES:
            continue
        for check in store.checks(c["id"]):
            if check["stage"] == "probe" and check["ok"] and check["details"].get("behaviour") == key:
                return c["id"]
    return None
