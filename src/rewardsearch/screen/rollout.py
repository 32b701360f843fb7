"""GRPO rollouts through our fast decoder, inside TRL: a `GRPOTrainer` whose generation method is replaced.

Only the sampling of completions changes. Tokenising prompts, decoding completions, rewards, advantages, the
loss, clipping and logging stay TRL's. The decoder calls the live (PEFT-wrapped) modules of the model being
trained, so every rollout samples from the weights of the current optimizer step. TRL's internal generation
method is not a public API: the override is pinned to the TRL range it was written against and refuses others.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

# The range whose `_generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
# has_tool_images=False) -> (completion_ids, logprobs)` this override was read from and tested with.
TRL_RANGE = ("1.16.0", "1.17.0")
_EXPECTED_PARAMS = ["self", "prompt_ids", "images", "multimodal_fields", "num_generations", "has_tool_images"]


def trl_supported() -> str | None:
    """None when the installed TRL is in the pinned range with the expected method; else why not."""
    from packaging.version import Version
    from trl import GRPOTrainer, __version__

    lo, hi = TRL_RANGE
    if not (Version(lo) <= Version(__version__) < Version(hi)):
        return f"TRL {__version__} is outside the range the fast rollout override supports (>={lo},<{hi})"
    method = getattr(GRPOTrainer, "_generate_single_turn", None)
    if method is None or list(inspect.signature(method).parameters) != _EXPECTED_PARAMS:
        return f"TRL {__version__}'s GRPOTrainer._generate_single_turn has another signature than the override's"
    return None


def sampling_settings(generation_config: Any, extra: dict[str, Any] | None) -> tuple[Any, dict[str, Any]]:
    """The decoder's `Sampling` for TRL's generation config, and the settings it would have to ignore."""
    from rewardsearch.evaluate.decoder import Sampling

    gc = generation_config
    s = Sampling(
        greedy=not gc.do_sample,
        temperature=float(gc.temperature if gc.temperature is not None else 1.0),
        top_k=int(gc.top_k or 0),
        top_p=float(gc.top_p if gc.top_p is not None else 1.0),
        min_p=gc.min_p,
    )
    checked = {"repetition_penalty": gc.repetition_penalty, "typical_p": gc.typical_p,
               "no_repeat_ngram_size": gc.no_repeat_ngram_size, "num_beams": gc.num_beams,
               "suppress_tokens": gc.suppress_tokens, "bad_words_ids": gc.bad_words_ids}
    checked.update(extra or {})
    return s, checked


def choose_rollout(requested: str, model: Any, device: str, args: Any) -> tuple[str, str | None]:
    """('fast' | 'trl', reason fast is not used) for `screen.generation`; `fast` that cannot run is an error."""
    from rewardsearch.evaluate.decoder import unsupported_reason

    if requested == "trl":
        return "trl", "screen.generation=trl"
    reason = trl_supported()
    if reason is None and device != "cuda":
        reason = "no CUDA device (CPU rollouts use TRL's generate)"
    if reason is None and (args.use_vllm or args.use_transformers_continuous_batching):
        reason = "TRL is set to generate with vLLM or continuous batching"
    if reason is None:
        reason = unsupported_reason(model, {"repetition_penalty": args.repetition_penalty,
                                            **(args.generation_kwargs or {})})
    if reason is None:
        return "fast", None
    if requested == "fast":
        raise ValueError(f"screen.generation=fast: {reason}")
    return "trl", reason


def merge_unsupported(model: Any) -> str | None:
    """Why the LoRA deltas of this PEFT model cannot be folded into a plain copy's weights; None when they can."""
    if not hasattr(model, "peft_config"):
        return None   # a plain model: nothing to fold
    from peft.tuners.lora.layer import Linear as LoraLinear
    from peft.tuners.lora.layer import LoraLayer

    for name, cfg in model.peft_config.items():
        if getattr(cfg, "modules_to_save", None):
            return f"adapter {name!r} trains whole modules (modules_to_save)"
        if getattr(cfg, "use_dora", False) or getattr(cfg, "lora_bias", False):
            return f"adapter {name!r} uses DoRA or a LoRA bias"
    shared = {}
    for _, p in model.named_parameters(remove_duplicate=False):   # a tied weight appears once per owner
        shared[p.data_ptr()] = shared.get(p.data_ptr(), 0) + 1
    for mname, module in model.named_modules():
        if isinstance(module, LoraLayer):
            if type(module) is not LoraLinear:
                return f"{mname} is a {type(module).__name__} LoRA layer, not a plain Linear one"
            if shared[module.base_layer.weight.data_ptr()] > 1:
                return f"{mname}'s weight is tied to another parameter"
    return None


class MergedCopy:
    """A plain copy of the model in training, its LoRA deltas folded into the weights, refreshed in place.

    Why: at rollout batch sizes a LoRA layer costs as many small kernels as the layer it wraps (two matmuls, a
    cast, a scale, an add); folded into the weights once per rollout, they cost nothing per token. The weights are
    overwritten in place, so a CUDA graph captured on the copy sees each refresh. The fold is PEFT's own
    (`get_delta_weight`, added as `merge_and_unload` adds it); rollouts then differ from the live path only by the
    rounding of the merged weights, and GRPO's log-probabilities are still TRL's, from the live model.
    """

    def __init__(self, model: Any) -> None:
        from peft.tuners.lora.layer import LoraLayer

        from rewardsearch.evaluate.generate import merged_for_eval

        self.model = merged_for_eval(model).requires_grad_(False)
        plain = dict(self.model.named_modules())
        live = model.get_base_model() if hasattr(model, "get_base_model") else model
        self._pairs = [(m, plain[n]) for n, m in live.named_modules() if isinstance(m, LoraLayer)]

    def refresh(self) -> None:
        import torch

        with torch.no_grad():
            for live, target in self._pairs:
                target.weight.copy_(live.base_layer.weight)
                for name in live.active_adapters:
                    if name in live.lora_A:
                        target.weight.add_(live.get_delta_weight(name))


def fast_grpo_trainer_class(weights: str = "merged") -> type:
    """`GRPOTrainer` with rollouts from `FastDecoder` (built here so importing this module needs no TRL).

    `weights`: `merged` samples from a `MergedCopy` refreshed before each rollout (falling back to `live`, with
    the reason logged, where the adapter cannot be folded); `live` runs the PEFT-wrapped modules themselves.
    """
    from trl import GRPOTrainer

    from rewardsearch.evaluate.decoder import FastDecoder, unsupported_reason
    from rewardsearch.screen.nonfinite import sdpa_backends

    if weights not in ("merged", "live"):
        raise ValueError(f"rollout weights {weights!r}: expected 'merged' or 'live'")

    class FastGRPOTrainer(GRPOTrainer):
        _fast: Any = None
        _fast_for: Any = None
        _merged: MergedCopy | None = None
        rollout_weights: dict[str, Any] | None = None   # what the rollouts sampled from, and why not merged

        def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations,
                                  has_tool_images=False):  # noqa: ANN001 - TRL's signature
            if images is not None or multimodal_fields or self.tools or self.use_vllm:
                return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                     has_tool_images)
            model = self.accelerator.unwrap_model(self.model)
            if self._fast is None or self._fast_for is not model:
                sampling, extras = sampling_settings(self.generation_config, None)
                reason = unsupported_reason(model, extras)
                if reason is not None:  # settings changed after the choice was made: say so, use TRL's path
                    print(f"rollout: TRL generate ({reason})", file=sys.stderr)
                    return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                         has_tool_images)
                self._merged, why = None, None
                if weights == "merged" and hasattr(model, "peft_config"):
                    why = merge_unsupported(model)
                    if why is None:
                        self._merged = MergedCopy(model)
                    else:
                        print(f"rollout: live LoRA weights ({why})", file=sys.stderr)
                self.rollout_weights = {"weights": "merged" if self._merged is not None else "live",
                                        "reason": why}
                self._fast = FastDecoder(self._merged.model if self._merged is not None else model)
                self._fast_for = model
                self._fast_sampling = sampling
            if self._merged is not None:
                self._merged.refresh()   # this optimizer step's weights, written where the graph reads them
            # the default SDPA backends, cuDNN's included, as measured: only the training pass leaves cuDNN out
            # (`nonfinite.without_cudnn_attention`), and a rollout is not differentiated
            with sdpa_backends(cudnn=True):
                completions = self._fast.generate(
                    prompt_ids, self.max_completion_length, self.eos_token_ids, self._tokenizer.pad_token_id,
                    sampling=self._fast_sampling,
                )
            return completions, None

    return FastGRPOTrainer
