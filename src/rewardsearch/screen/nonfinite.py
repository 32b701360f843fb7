"""An optimizer step whose gradients are not all finite is skipped, not taken.

Why: on the H200 proof runs (Qwen2.5-Coder-0.5B, bf16, LoRA, TRL 1.16) 8 of 40 GRPO trials logged a NaN grad norm
at a random step (4-21 of 30) with a finite loss, rewards and KL
(`benchmarks/results/2026-12-02-nonfinite-gradients-qwen-coder-0.5b.json`). The Trainer clips by that norm, the
clip coefficient is NaN, every gradient becomes NaN and AdamW writes NaN into every LoRA weight: from then on the
policy samples garbage to the length limit and the trial evaluates at 0.000, the base-rewards-only arm included.
fp16 loss scaling (torch's GradScaler) and Megatron skip such a step; transformers' Trainer does not. This
callback does, between the clipping and `optimizer.step()`: it drops every gradient, so AdamW leaves the weights
and its moments as they were; the learning-rate schedule moves on as if the step had been taken.

Which parameters went non-finite first is recorded (from their gradients before clipping spread the NaN), so the
cause can be looked for. The skipped steps are written to `skipped_steps.json` as they happen, so a trial resumed
from a checkpoint keeps those before it; `train.json` holds them all. A trial that keeps producing them is still stopped
by the early-stop rule (`screen/early_stop.py`) or failed by the trial (`screen/trial.py`).

The cause, found after the guard ran on the H200 (2026-12-02, fourth block): every skipped step had 324 of the
336 LoRA tensors non-finite, the first in backward order being layer 23's q_proj; the 12 finite ones are layer 23's
down/up/gate/o/v/k, reached before it, so the NaN entered at the last layer's query gradient alone. And every one of
the 11 non-finite steps of both runs had a padded batch length of 64 mod 128, as had no other step of the 1,038
(`scripts/nonfinite_lengths.py`). That is a cuDNN SDPA backward bug on H100/H200 with torch >= 2.11
(pytorch/pytorch#196678, met through TRL in huggingface/trl#7181 with Qwen2.5-0.5B): with an explicit attention
mask, a length of 64 mod 128 and a row whose log-sum-exp is below -88.7, `grad_q` comes back NaN while the forward,
`grad_k` and `grad_v` are fine. So the differentiated pass avoids cuDNN attention by default
(`without_cudnn_attention`, `screen.cudnn_attention`); the guard stays for whatever else goes non-finite.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

NAMES_KEPT = 5   # the first few parameter names per skipped step: enough to place the layer


def skipped_steps_flags(skipped: list[dict[str, Any]] | None) -> list[str]:
    """A trial's flag (status, report, the proposer's feedback) when it skipped optimizer steps: it trained on
    fewer steps than asked, for a reason that is not its reward's."""
    steps = [s.get("step") for s in skipped or []]
    if not steps:
        return []
    return [f"numerics: skipped {len(steps)} optimizer step{'s' * (len(steps) > 1)} with non-finite gradients "
            f"({', '.join(map(str, steps))})"]


def sdpa_backends(cudnn: bool) -> Any:
    """A context manager enabling the SDPA backends (flash, memory-efficient, math; cuDNN when `cudnn`)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    return sdpa_kernel([*backends, SDPBackend.CUDNN_ATTENTION] if cudnn else backends)


def without_cudnn_attention(trainer_cls: type) -> type:
    """`trainer_cls` whose training steps (forward, backward and any recomputation of checkpointed activations)
    run without cuDNN's SDPA kernels (the bug in the module docstring). Generation inside the step is not
    differentiated, so a trainer may put cuDNN back for it: `FastGRPOTrainer` does, so its rollouts run on the
    backends its step time was measured with (the training pass's own cost without cuDNN is not measured yet);
    TRL's own generate path stays without cuDNN."""

    class NoCudnnAttention(trainer_cls):  # type: ignore[misc,valid-type]
        training_sdpa_cudnn = False   # what train.json records: the class actually used, not the setting

        def training_step(self, *args: Any, **kwargs: Any) -> Any:
            with sdpa_backends(cudnn=False):
                return super().training_step(*args, **kwargs)

    NoCudnnAttention.__name__ = NoCudnnAttention.__qualname__ = trainer_cls.__name__
    return NoCudnnAttention


def nonfinite_guard(path: Path, poison: tuple[int, bool] | None = None) -> Any:
    """The TrainerCallback; `path` is the trial's `skipped_steps.json`. `poison` (fault drills only, `execute/faults.py` `nangrad`): (first step, every step
    from it on or that one only) at which one gradient is set to NaN before the check, as the real failure does."""
    import torch
    from transformers import TrainerCallback

    class NonFiniteGuard(TrainerCallback):
        def __init__(self) -> None:
            self.skipped: list[dict[str, Any]] = []
            self._params: list[tuple[str, Any]] = []
            self._finite: dict[str, Any] = {}   # name -> 0-d bool tensor (no host sync until the step is checked)
            self._step = 0

        def on_train_begin(self, args, state, control, model=None, **kwargs):  # noqa: ANN001, ANN003
            # state is the checkpoint's by now: the steps skipped before it stay, those of a lost attempt after it go
            prior = json.loads(path.read_text()) if path.is_file() else []
            self.skipped = [s for s in prior if s["step"] <= state.global_step]
            if self._params or model is None:
                return control
            self._params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
            for i, (name, p) in enumerate(self._params):
                p.register_post_accumulate_grad_hook(self._hook(name, first=i == 0))
            return control

        def _hook(self, name: str, first: bool) -> Any:
            def hook(p: Any) -> None:
                if first and poison is not None:
                    at, every = poison
                    if self._step + 1 == at or (every and self._step + 1 >= at):
                        p.grad.fill_(float("nan"))
                # accumulated micro-batches sum into p.grad, so the last call sees any earlier non-finite value
                self._finite[name] = torch.isfinite(p.grad).all()
            return hook

        def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003
            self._step = state.global_step
            return control

        def on_pre_optimizer_step(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003
            flags, self._finite = self._finite, {}
            if not flags or bool(torch.stack(list(flags.values())).all()):
                return control
            bad = [n for n, ok in flags.items() if not bool(ok)]
            for _, p in self._params:
                p.grad = None   # AdamW skips a parameter without a gradient: weights and moments stay
            rec = {"step": state.global_step + 1, "params": bad[:NAMES_KEPT], "n_params": len(bad)}
            self.skipped.append(rec)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.skipped))
            tmp.replace(path)
            print(f"trial: skipped optimizer step {rec['step']}: non-finite gradients in {len(bad)} tensors "
                  f"(first: {', '.join(bad[:2])})", file=sys.stderr)
            return control

    return NonFiniteGuard()
