"""One screening trial: GRPO + LoRA with TRL, then greedy evaluation of the trained adapter, in its own process.

    python -m rewardsearch.screen.trial SPEC.json

The spec (written by the executor, see `TrialSpec`) names the model directory, the task, the reward specs
trained beside the base rewards, and the config sections this stage needs. Candidate rewards run in sandbox
workers (`SandboxedReward`), never in this process. Outputs, all in `spec.out_dir`:

- `adapter/`        the trained LoRA adapter (PEFT format)
- `hf/checkpoint-N/` the last resumable checkpoint (`screen.checkpoint_every`); a restarted trial continues from
  it with TRL's own `resume_from_checkpoint` (adapter, optimizer, scheduler, RNG and log history), and it is
  removed once the trial is done. A trial told to stop at a rung (`stop_at`, successive halving:
  `screen/halving.py`) saves one there and keeps it: a promotion continues from it
- `eval_dev_rung<N>.json` the dev-slice evaluation of a trial stopped at the rung of N steps
- `train.json`      state, reason, wall time, TRL's log history (per-reward curves), LoRA movement, reward stats
- `eval_<split>.json` per-item strict/flexible correctness and extraction for each evaluated split

A finished `train.json` plus adapter is reused when the process is restarted (resume), so a kill during
evaluation does not retrain.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rewardsearch.config import EvalConfig, ModelConfig, SandboxConfig, ScreenConfig, TaskConfig


@dataclass
class TrialSpec:
    trial_id: str
    out_dir: str
    model_dir: str
    seed: int                       # training seed (multi-seed retraining varies it)
    task_seed: int                  # the run's seed: fixes the splits, identical for every trial of a run
    task: dict[str, Any]
    model: dict[str, Any]
    screen: dict[str, Any]
    sandbox: dict[str, Any]
    eval: dict[str, Any]
    rewards: list[dict[str, Any]] = field(default_factory=list)   # RewardSpec dicts (run sandboxed)
    base_rewards: bool = True
    eval_splits: list[str] = field(default_factory=lambda: ["dev"])
    # "zscore": every reward is z-scored within its GRPO group (`rewards/normalize.py`) and the base rewards share
    # one member's weight; used for reward sets (ensembles, random sets). "none": rewards are summed as returned.
    normalize: str = "none"
    # Successive halving (`screen/halving.py`): stop at this step, keep the checkpoint, evaluate the rung's dev
    # slice; a later run of the same directory with a higher `stop_at` continues from that checkpoint. None = train
    # to `screen.steps` (the final rung), then the full evaluation of `eval_splits`.
    stop_at: int | None = None
    # Early stop of clearly dead trials (`screen/early_stop.py`, `screen.early_stop`): the search's candidate trials
    # only; the baseline and the final stage's arms train their whole budget.
    early_stop: bool = False

    def target_steps(self, screen: ScreenConfig) -> int:
        """The step this run trains to: its rung, or the final `screen.steps`."""
        return min(self.stop_at, screen.steps) if self.stop_at is not None else screen.steps

    def at_rung(self, screen: ScreenConfig) -> bool:
        return self.target_steps(screen) < screen.steps

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def read(cls, path: Path) -> TrialSpec:
        return cls(**json.loads(path.read_text()))


def _atomic_write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    tmp.replace(path)


def _trainable_snapshot(model: Any) -> dict[str, Any]:
    return {n: p.detach().float().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def _lora_movement(before: dict[str, Any], model: Any) -> dict[str, float]:
    """How far the LoRA weights moved from their initial values (B starts at zero, so any signal moves it)."""
    import torch

    total_sq, max_abs, changed = 0.0, 0.0, 0
    for n, p in model.named_parameters():
        if n in before:
            d = p.detach().float().cpu() - before[n]
            total_sq += float(torch.sum(d * d))
            max_abs = max(max_abs, float(d.abs().max()))
            changed += int(bool(torch.any(d != 0)))
    return {"delta_l2": total_sq**0.5, "delta_max_abs": max_abs, "tensors_changed": changed, "tensors": len(before)}


def _warmup_kwargs(config_cls: Any, ratio: float) -> dict[str, float]:
    # transformers 5 folded `warmup_ratio` into `warmup_steps` (a float in [0, 1) is a ratio); 4.x has both.
    if "warmup_ratio" in config_cls.__dataclass_fields__:
        return {"warmup_ratio": ratio}
    return {"warmup_steps": ratio}


def _environment(device: str) -> dict[str, Any]:
    """What produced this trial (provenance for the report): library versions and the accelerator."""
    import platform
    from importlib import metadata

    import torch

    versions = {}
    for pkg in ("torch", "transformers", "trl", "peft", "accelerate"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    gpu = torch.cuda.get_device_name() if device == "cuda" and torch.cuda.is_available() else None
    return {"python": platform.python_version(), "host": platform.node(), "gpu": gpu, **versions}


def last_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint under `out/hf` (transformers writes trainer_state.json last)."""
    done = [p for p in (out / "hf").glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return max(done, key=lambda p: int(p.name.rsplit("-", 1)[1]), default=None)


def train(spec: TrialSpec, task: Any, out: Path) -> dict[str, Any]:
    """Run GRPO; returns the `train.json` record (also written)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback, set_seed
    from trl import GRPOConfig, GRPOTrainer

    from rewardsearch.execute.faults import nan_grad_poison
    from rewardsearch.models import load_tokenizer, lora_config, pick_device, pick_dtype
    from rewardsearch.rewards.base import base_rewards
    from rewardsearch.rewards.spec import RewardSpec
    from rewardsearch.sandbox.runner import SandboxedReward
    from rewardsearch.screen import trl_args
    from rewardsearch.screen.halving import rung_callback
    from rewardsearch.screen.nonfinite import nonfinite_guard, without_cudnn_attention
    from rewardsearch.screen.rollout import choose_rollout, fast_grpo_trainer_class

    screen = ScreenConfig.model_validate(spec.screen)
    mcfg = ModelConfig.model_validate(spec.model)
    scfg = SandboxConfig.model_validate(spec.sandbox)
    device = pick_device(screen.device)
    dtype = pick_dtype(mcfg.dtype, device)
    set_seed(spec.seed)

    problems = task.split("train")
    ds = Dataset.from_list([{"prompt": task.prompt(p), "answer": p.answer, "item_id": p.id} for p in problems])
    tokenizer = load_tokenizer(spec.model_dir)
    model = AutoModelForCausalLM.from_pretrained(spec.model_dir, dtype=dtype)

    sandboxed = [SandboxedReward(RewardSpec.from_dict(r), scfg) for r in spec.rewards]
    base = base_rewards(task.answer_format) if spec.base_rewards else []
    reward_funcs: list[Any] = base + sandboxed
    reward_weights: list[float] | None = None
    if spec.normalize == "zscore":
        from rewardsearch.rewards.normalize import GroupZScore

        # The wrapper runs here, in our process, around the sandboxed callable: candidate code stays in its worker.
        reward_funcs = [GroupZScore(f, screen.num_generations) for f in reward_funcs]
        # The three base rewards are one member of the set: together they weigh as much as one candidate.
        reward_weights = ([1.0 / len(base)] * len(base) if base else []) + [1.0] * len(sandboxed)
    elif spec.normalize != "none":
        raise ValueError(f"normalize={spec.normalize!r}: expected 'none' or 'zscore'")

    class StopOnQuarantine(TrainerCallback):
        # A reward that keeps failing would only feed NaNs; stop early and report why.
        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001 - TRL's callback signature
            if any(r.quarantined for r in sandboxed):
                control.should_training_stop = True
            # The driver shows live progress from this file; it is rewritten whole, so it is never half-read.
            _atomic_write_json(out / "progress.json", {"step": state.global_step, "max_steps": state.max_steps})
            with open(out / "steps.log", "a") as fh:   # every step trained, resumed ones included: an audit trail
                fh.write(f"{state.global_step} {time.time():.3f}\n")
            return control

    at_rung = spec.at_rung(screen)
    rung = rung_callback(spec.target_steps(screen) if at_rung else None, screen.early_stop if spec.early_stop else None)
    guard = nonfinite_guard(out / "skipped_steps.json", nan_grad_poison(spec.trial_id))

    if "tensorboard" in screen.report_to:
        # transformers' default is under output_dir (hf/), which a finished trial removes with its checkpoints
        import os

        os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(out / "tensorboard"))
    per_step = screen.prompts_per_step * screen.num_generations
    owned = dict(
        output_dir=str(out / "hf"),
        max_steps=screen.steps,
        learning_rate=screen.learning_rate,
        lr_scheduler_type=screen.lr_scheduler,
        weight_decay=screen.weight_decay,
        **_warmup_kwargs(GRPOConfig, screen.warmup_ratio),
        max_grad_norm=screen.max_grad_norm,
        per_device_train_batch_size=per_step,
        num_generations=screen.num_generations,
        max_completion_length=screen.max_completion_length,
        temperature=screen.temperature,
        beta=screen.beta,
        logging_steps=screen.logging_steps,
        save_strategy="steps" if screen.checkpoint_every else "no",
        save_steps=screen.checkpoint_every or 500,
        save_total_limit=1,     # only the newest is ever resumed from
        save_only_model=False,  # optimizer, scheduler and RNG state too: a resumed trial continues exactly
        report_to=list(screen.report_to) or "none",
        run_name=spec.trial_id,
        seed=spec.seed,
        data_seed=spec.seed,
        use_cpu=device == "cpu",
        bf16=dtype == torch.bfloat16,
        fp16=False,
        disable_tqdm=True,
        reward_weights=reward_weights,
    )
    # screen.trl passes the rest of GRPOConfig through; the fields above stay the trial's (`trl_args.OWNED`)
    args = GRPOConfig(**trl_args.build(screen.trl, owned))
    rollout, fallback = choose_rollout(screen.generation, model, device, args)
    if fallback and screen.generation == "auto":
        print(f"rollout: TRL generate ({fallback})", file=sys.stderr)
    trainer_cls = fast_grpo_trainer_class(screen.rollout_weights) if rollout == "fast" else GRPOTrainer
    if not screen.cudnn_attention:
        trainer_cls = without_cudnn_attention(trainer_cls)
    trainer = trainer_cls(
        model=model,
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=ds,
        processing_class=tokenizer,
        peft_config=lora_config(mcfg.lora),
        callbacks=[StopOnQuarantine(), rung, guard],
    )
    before = _trainable_snapshot(trainer.model)
    resume = last_checkpoint(out)
    if resume is not None:
        print(f"trial: resuming from {resume.name}", file=sys.stderr)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    try:
        trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
    finally:
        for r in sandboxed:
            r.close()
    wall = time.time() - t0
    movement = _lora_movement(before, trainer.model)
    quarantined = [r for r in sandboxed if r.quarantined]
    reasons = [f"reward {r.__name__} quarantined after {r.failures} failed calls: {r.last_error}" for r in quarantined]
    reasons += [rung.dead] if rung.dead else []
    steps = trainer.state.global_step
    if 2 * len(guard.skipped) > steps:
        # the trial trained on fewer than half of its steps: what it measures is not this reward's training
        reasons.append(f"non-finite gradients on {len(guard.skipped)} of {steps} optimizer steps (skipped)")
    if not _weights_finite(trainer.model):
        reasons.append("non-finite adapter weights after training")
    record: dict[str, Any] = {
        "state": "failed" if reasons else "done",
        "reason": "; ".join(reasons) or None,
        "wall_s": wall,
        "steps": trainer.state.global_step,
        "device": device,
        # what sizes executor.slots: the most this trial's process held on its GPU while training
        "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20) if device.startswith("cuda") else None,
        "dtype": str(dtype).removeprefix("torch."),
        "lora": movement,
        "reward_stats": {r.__name__: r.stats for r in sandboxed},
        "normalize": spec.normalize,
        "reward_weights": reward_weights,
        "reward_norm": {f.__name__: f.summary() for f in reward_funcs if hasattr(f, "summary")},
        "env": _environment(device),
        "generation": {"backend": rollout, "fallback_reason": fallback,
                       "rollout_weights": getattr(trainer, "rollout_weights", None)},
        "training_attention": {"implementation": getattr(model.config, "_attn_implementation", None),
                               "cudnn_sdpa": getattr(trainer, "training_sdpa_cudnn", True)},
        # what the trainer ran with for each screen.trl field (TRL may normalize a value, e.g. scale_rewards)
        "trl": {k: getattr(trainer.args, k) for k in screen.trl},
        "report_to": list(trainer.args.report_to or []),   # screen.report_to as the trainer took it
        "resumed_from_step": int(resume.name.rsplit("-", 1)[1]) if resume is not None else None,
        # halving: the rung this run stopped at (None: the final one), and the training state at its start and at
        # the rung stop; a promoted trial's `start` equals its previous rung's `stop` (`screen/halving.py`)
        "stop_at": spec.target_steps(screen) if at_rung else None,
        "early_stop": rung.dead,
        # optimizer steps skipped for non-finite gradients (`screen/nonfinite.py`), resumed runs included
        "skipped_steps": guard.skipped,
        "training_state": {"start": rung.at_begin, "stop": rung.at_stop},
        "log_history": trainer.state.log_history,
    }
    if resume is not None:
        # `lora` movement is measured from the resumed weights; the whole run moved at least this much.
        record["lora"]["since_step"] = record["resumed_from_step"]
    if not reasons:
        trainer.model.save_pretrained(out / "adapter")
    _atomic_write_json(out / "train.json", record)
    if not (at_rung and not reasons):
        # done or dead: the checkpoints are not needed any more; at a rung they are what a promotion continues from
        import shutil

        shutil.rmtree(out / "hf", ignore_errors=True)
    record["_model"], record["_tokenizer"] = trainer.model, tokenizer
    return record


def _weights_finite(model: Any) -> bool:
    """Every trainable weight is finite (one host sync)."""
    import torch

    flags = [torch.isfinite(p).all() for p in model.parameters() if p.requires_grad]
    return bool(torch.stack(flags).all()) if flags else True


def _release_cuda_cache() -> None:
    """Give the allocator's cached training blocks back before evaluation, so the process holds what evaluation
    needs rather than both (the H200 final stage: 38-41 GiB per trial against a 25.5 GiB training peak)."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def evaluate_split(model: Any, tokenizer: Any, task: Any, split: str, ecfg: EvalConfig) -> dict[str, Any]:
    import torch

    from rewardsearch.evaluate.generate import generate
    from rewardsearch.evaluate.metrics import score

    problems = task.split(split)[: ecfg.dev_size if split == "dev" else ecfg.test_size]
    cuda = torch.cuda.is_available() and next(model.parameters()).device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    info: dict[str, Any] = {}
    texts = generate(model, tokenizer, [task.prompt(p) for p in problems], ecfg.max_new_tokens, ecfg.batch_size,
                     backend=ecfg.generation, info=info)
    rec = score(task, problems, texts, trial_id="", split=split, wall_s=time.time() - t0)
    d = asdict(rec)
    d.pop("trial_id")
    d["generation"] = info
    # what a trial holds while it evaluates (a whole test split in one batch can need more than training did)
    d["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20) if cuda else None
    d["samples"] = texts[:8]  # a few raw completions: what the model actually writes, for the report
    return d


def run(spec: TrialSpec) -> int:
    from rewardsearch.tasks import load_task

    out = Path(spec.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    task = load_task(TaskConfig.model_validate(spec.task), spec.task_seed)
    ecfg = EvalConfig.model_validate(spec.eval)
    screen = ScreenConfig.model_validate(spec.screen)
    train_file = out / "train.json"
    model = tokenizer = None
    prior = json.loads(train_file.read_text()) if train_file.is_file() else None
    if prior is not None and prior.get("state") != "done":
        return 0
    # A finished run is reused up to the step it reached; a promoted trial (a higher `stop_at`) trains on from there.
    if prior is not None and (out / "adapter").is_dir() and (prior.get("steps") or 0) >= spec.target_steps(screen):
        pass
    else:
        # An exception here is not the reward's doing (its failures come back as None and quarantine): it ends the
        # process through `main`, which writes crash.json, and the executor retries the trial
        record = train(spec, task, out)
        if record["state"] != "done":
            return 0
        from rewardsearch.evaluate.generate import merged_for_eval

        model, tokenizer = merged_for_eval(record.pop("_model")), record.pop("_tokenizer")
        _release_cuda_cache()
    if model is None:
        from rewardsearch.evaluate.generate import load_for_eval
        from rewardsearch.models import pick_device, pick_dtype

        device = pick_device(ScreenConfig.model_validate(spec.screen).device)
        dtype = pick_dtype(ModelConfig.model_validate(spec.model).dtype, device)
        model, tokenizer = load_for_eval(spec.model_dir, out / "adapter", device, dtype)
    model.eval()
    if spec.at_rung(screen):
        # the rung's dev slice: the first `rung_dev_size` dev items (`screen/halving.py` says why)
        target = out / rung_eval_name(spec.target_steps(screen))
        if not target.is_file():
            slice_cfg = ecfg.model_copy(update={"dev_size": min(screen.rung_dev_size or ecfg.dev_size, ecfg.dev_size)})
            _atomic_write_json(target, evaluate_split(model, tokenizer, task, "dev", slice_cfg))
        return 0
    for split in spec.eval_splits:
        target = out / f"eval_{split}.json"
        if not target.is_file():
            _atomic_write_json(target, evaluate_split(model, tokenizer, task, split, ecfg))
    return 0


def rung_eval_name(steps: int) -> str:
    """The file a trial stopped at a rung of `steps` writes its dev-slice evaluation to."""
    return f"eval_dev_rung{steps}.json"


def crash_record(exc: BaseException) -> dict[str, Any]:
    """What `crash.json` holds: the exception, and which memory ran out if that was it (`execute/base.py` reads it)."""
    name = type(exc).__name__
    text = f"{name}: {exc}".splitlines()[0][:500]
    oom = "GPU" if name == "OutOfMemoryError" or "CUDA out of memory" in str(exc) else (
        "host" if isinstance(exc, MemoryError) else None)
    return {"type": name, "reason": text, "oom": oom, "traceback": traceback.format_exc()[-4000:]}


def run_guarded(spec_path: Path, run_spec: Any, read: Any) -> int:
    """Run one job's `run_spec(read(spec_path))`; an exception leaves crash.json in the spec's directory, exit 1."""
    from rewardsearch.execute.faults import maybe_fault

    spec = read(spec_path)
    try:
        maybe_fault(getattr(spec, "trial_id", spec_path.parent.name))
        return run_spec(spec)
    except Exception as exc:  # noqa: BLE001 - whatever it was, the executor reads it from crash.json
        _atomic_write_json(spec_path.parent / "crash.json", crash_record(exc))
        traceback.print_exc()
        return 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m rewardsearch.screen.trial SPEC.json", file=sys.stderr)
        return 2
    return run_guarded(Path(argv[0]), run, TrialSpec.read)


if __name__ == "__main__":
    raise SystemExit(main())
