"""TRL's trainer settings in a trial: which `GRPOConfig` fields the trial owns, which `screen.trl` may set.

`screen.trl` is a mapping of `GRPOConfig` fields passed through to TRL unchanged
(`screen.trl.loss_type=dr_grpo screen.trl.num_iterations=2` on the command line). It is checked against the
installed TRL's `GRPOConfig` dataclass, so a field of another TRL version is a one-line error with a suggestion.
Fields the trial sets from its own config (`OWNED`) are refused with the key to use instead: they carry the
protocol every candidate of a run is screened under (steps, learning rate, group size, seeds) or the trial's
own machinery (checkpoints, logging), and a second way to set them would let the two disagree silently.

A few fields the trial sets to its own defaults (`DEFAULTS`) stay open to `screen.trl`: they change how the
work is done, not what a trial means, e.g. `gradient_accumulation_steps` (one optimizer step then spans that
many batches of `screen.prompts_per_step` prompts) and `gradient_checkpointing`.

This module owns both tables; `config.py` validates with `check` and `screen/trial.py` builds with `build`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import typing
from collections.abc import Mapping
from typing import Any

# field -> why the trial owns it and what to set instead
OWNED: dict[str, str] = {
    "output_dir": "the executor gives each trial its own directory",
    "max_steps": "set screen.steps",
    "learning_rate": "set screen.learning_rate",
    "lr_scheduler_type": "set screen.lr_scheduler",
    "weight_decay": "set screen.weight_decay",
    "warmup_ratio": "set screen.warmup_ratio",
    "warmup_steps": "set screen.warmup_ratio",
    "max_grad_norm": "set screen.max_grad_norm",
    "per_device_train_batch_size": "set screen.prompts_per_step (the batch is prompts_per_step x num_generations)",
    "num_generations": "set screen.num_generations",
    "max_completion_length": "set screen.max_completion_length",
    "temperature": "set screen.temperature",
    "beta": "set screen.beta",
    "logging_steps": "set screen.logging_steps",
    "save_strategy": "set screen.checkpoint_every",
    "save_steps": "set screen.checkpoint_every",
    "save_total_limit": "a trial resumes from its newest checkpoint only (screen.checkpoint_every)",
    "save_only_model": "a resumed trial needs its optimizer, scheduler and RNG state (screen.checkpoint_every)",
    "report_to": "set screen.report_to (TRL's log history is always kept in train.json as well)",
    "run_name": "each trial reports under its trial id (screen.report_to)",
    "seed": "set seed (final arms retrain with fresh seeds: ensemble.seeds)",
    "data_seed": "set seed (final arms retrain with fresh seeds: ensemble.seeds)",
    "use_cpu": "set screen.device",
    "bf16": "set model.dtype",
    "fp16": "set model.dtype",
    "disable_tqdm": "the driver shows a trial's progress from its progress.json",
    "reward_weights": "set ensemble.normalize (reward sets weigh the base rewards as one member)",
    "generation_batch_size": "set screen.trl.steps_per_generation (TRL refuses both at once)",
}

# field -> the trial's value where `screen.trl` does not set it
DEFAULTS: dict[str, Any] = {
    "gradient_accumulation_steps": 1,
    "steps_per_generation": 1,       # fresh completions for every optimizer step: no stale rollouts by default
    "gradient_checkpointing": False,  # GRPO here is generation-bound; recomputing activations only costs time
    "dataloader_num_workers": 0,
}


@functools.lru_cache(maxsize=1)
def _grpo_fields() -> tuple[str, dict[str, Any]]:
    """(TRL's version, {field: type hint}) of the installed `GRPOConfig`; importing TRL takes seconds, so once."""
    from importlib import metadata

    from trl import GRPOConfig

    hints = typing.get_type_hints(GRPOConfig)
    return metadata.version("trl"), {f.name: hints.get(f.name, Any) for f in dataclasses.fields(GRPOConfig)}


def check(trl: Mapping[str, Any]) -> None:
    """Raise a one-line ValueError for the first field of `trl` that the installed `GRPOConfig` lacks, that the
    trial owns, or whose value does not fit the field's type."""
    if not trl:
        return  # nothing to check: TRL is not imported
    from pydantic import TypeAdapter, ValidationError

    version, fields = _grpo_fields()
    for name, value in trl.items():
        if name in OWNED:
            raise ValueError(f"screen.trl.{name} is set by the trial itself: {OWNED[name]}")
        if name not in fields:
            guess = difflib.get_close_matches(name, list(fields), n=1)
            hint = f" (did you mean {guess[0]!r}?)" if guess else ""
            raise ValueError(f"screen.trl.{name}: not a field of GRPOConfig in the installed TRL {version}{hint}")
        try:
            TypeAdapter(fields[name]).validate_python(value)
        except ValidationError:
            kind = getattr(fields[name], "__name__", None) or str(fields[name]).replace("typing.", "")
            raise ValueError(f"screen.trl.{name}={value!r}: GRPOConfig expects {kind}") from None


def build(trl: Mapping[str, Any], owned: Mapping[str, Any]) -> dict[str, Any]:
    """The `GRPOConfig` keyword arguments of a trial: its defaults, then `screen.trl`, then what it owns."""
    stray = set(owned) - set(OWNED)
    if stray:  # a field the trial sets must be listed in OWNED, or `screen.trl` could set it as well
        raise RuntimeError(f"trial sets GRPOConfig fields missing from trl_args.OWNED: {sorted(stray)}")
    check(trl)
    return {**DEFAULTS, **trl, **owned}
