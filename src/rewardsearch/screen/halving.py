"""Successive halving: trials stop at rungs, the best continue from their checkpoints.

Every trial of a search is built with the final rung's `max_steps` (`screen.steps`), so its learning-rate schedule
(warmup, cosine) is the same whichever rung it reaches. A trial sent to rung k stops there (`RungCallback`): it
saves a full checkpoint (adapter, optimizer, scheduler, RNG, log history: transformers' own) and is evaluated on
the rung's dev slice. `promote` ranks the round's trials at that rung; a promoted trial is started again with the
next rung as its stop and continues from that checkpoint through `trainer.train(resume_from_checkpoint=...)`,
never from scratch. Checkpoints of dropped, failed and finished trials are removed.

Which dev items: rungs before the last evaluate the first `screen.rung_dev_size` items of the dev split (all of
`eval.dev_size` when unset); the last rung is the ordinary full dev evaluation that the ranking reads.

The promotion rule (`promote`): the trials that trained to the rung are ordered by the final ranking's own key
(`search/ranking.py:rank_key`: dev accuracy, then extraction rate, then flexible accuracy); the first
ceil(keep * n) are promoted. With `screen.keep_within_noise`, every other trial is compared with the last one
promoted by the report's paired test on the same items (`evaluate/stats.py:compare`: one checkpoint a side, so
exact McNemar), Holm-corrected over those comparisons at `stats.alpha`; a trial the test cannot tell from it is
promoted too, so a trial is dropped only for a difference the dev slice can see.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardsearch.config import EarlyStopConfig

PROMOTED, DROPPED, FINAL, FAILED = "promoted", "dropped", "final", "failed"


def adapter_digest(model: Any) -> str:
    """sha256 of the trainable (LoRA) weights, in name order: equal digests mean the very same adapter."""
    h = hashlib.sha256()
    for name, p in sorted((n, p) for n, p in model.named_parameters() if p.requires_grad):
        h.update(name.encode())
        h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def training_facts(state: Any, model: Any, optimizer: Any, lr_scheduler: Any) -> dict[str, Any]:
    """Where the training stands: global step, the optimizer's own step count, the next learning rate, the adapter.

    Recorded when a trial stops at a rung and when a promoted trial starts from its checkpoint: the two must agree.
    """
    opt = getattr(optimizer, "optimizer", optimizer)   # accelerate wraps the torch optimizer
    steps = [int(s["step"]) for s in getattr(opt, "state", {}).values() if "step" in s]
    lr = lr_scheduler.get_last_lr()[0] if lr_scheduler is not None else None
    return {"global_step": int(state.global_step), "optimizer_step": max(steps, default=0),
            "learning_rate": float(lr) if lr is not None else None, "adapter_sha256": adapter_digest(model)}


def rung_callback(stop_at: int | None, early: EarlyStopConfig | None) -> Any:
    """A TrainerCallback that stops (and checkpoints) at `stop_at` and stops dead trials by `screen/early_stop.py`."""
    from transformers import TrainerCallback

    from rewardsearch.screen.early_stop import dead_reason

    class RungCallback(TrainerCallback):
        def __init__(self) -> None:
            self.at_begin: dict[str, Any] | None = None
            self.at_stop: dict[str, Any] | None = None
            self.dead: str | None = None

        def on_train_begin(self, args, state, control, model=None, optimizer=None, lr_scheduler=None,  # noqa: ANN001
                           **kwargs):  # noqa: ANN003 - TRL's callback signature
            # after transformers loaded the checkpoint's adapter, optimizer and scheduler: what the trial continues from
            self.at_begin = training_facts(state, model, optimizer, lr_scheduler)
            return control

        def on_step_end(self, args, state, control, model=None, optimizer=None, lr_scheduler=None,  # noqa: ANN001
                        **kwargs):  # noqa: ANN003
            if stop_at is not None and state.global_step >= stop_at:
                control.should_save = True   # the checkpoint a promotion continues from, whatever save_steps says
                control.should_training_stop = True
                self.at_stop = training_facts(state, model, optimizer, lr_scheduler)
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN003
            if early is not None and self.dead is None:
                why = dead_reason(state.log_history, early)
                if why:
                    self.dead = f"early stop at step {state.global_step}/{state.max_steps}: {why}"
                    control.should_training_stop = True
            return control

    return RungCallback()


@dataclass
class RungResult:
    """One trial's evaluation at a rung (the dev slice), as `promote` reads it."""

    trial_id: str
    item_ids: list[str]
    correct: list[int]
    accuracy: float
    extraction_rate: float
    flex_accuracy: float
    round: int = 0


def promote(results: Sequence[RungResult], keep: float, within_noise: bool, alpha: float,
            settings: Any) -> dict[str, tuple[str, str]]:
    """`{trial_id: (PROMOTED | DROPPED, why)}` for the trials evaluated at one rung (see the module docstring)."""
    from rewardsearch.evaluate.stats import compare, correct_family
    from rewardsearch.search.ranking import rank_key

    if not results:
        return {}
    order = sorted(results, key=lambda r: rank_key({
        "dev": {"accuracy": r.accuracy, "extraction_rate": r.extraction_rate, "flex_accuracy": r.flex_accuracy},
        "round": r.round, "id": r.trial_id}))
    n = len(order)
    quota = max(1, math.ceil(keep * n))
    cut = order[quota - 1]
    out: dict[str, tuple[str, str]] = {}
    for i, r in enumerate(order[:quota], 1):
        out[r.trial_id] = (PROMOTED, f"rank {i}/{n} at dev-slice acc {r.accuracy:.3f}, inside the keep quota {quota}")
    rest = order[quota:]
    pvals: dict[str, tuple[float, float]] = {}
    if within_noise and rest:
        comps = [compare(cut.trial_id, r.trial_id, "dev", "rung", [(cut.trial_id, cut.item_ids, cut.correct)],
                         [(r.trial_id, r.item_ids, r.correct)], settings) for r in rest]
        correct_family(comps)
        pvals = {c.b: (c.p, c.p_holm) for c in comps}
    for i, r in enumerate(rest, quota + 1):
        head = f"rank {i}/{n} at dev-slice acc {r.accuracy:.3f} vs {cut.accuracy:.3f} of the last kept"
        if r.trial_id in pvals:
            p, holm = pvals[r.trial_id]
            if holm >= alpha:
                out[r.trial_id] = (PROMOTED, f"{head}; within noise of it (exact McNemar p={p:.3g}, Holm {holm:.3g} "
                                             f">= alpha {alpha})")
            else:
                out[r.trial_id] = (DROPPED, f"{head}; worse by the paired test (exact McNemar p={p:.3g}, Holm "
                                            f"{holm:.3g} < alpha {alpha})")
        else:
            out[r.trial_id] = (DROPPED, f"{head}; outside the keep quota {quota}")
    return out


def remove_checkpoints(trial_dir: Path) -> None:
    """Drop a trial's resumable checkpoints (it will not be promoted, or it is done)."""
    import shutil

    shutil.rmtree(trial_dir / "hf", ignore_errors=True)
