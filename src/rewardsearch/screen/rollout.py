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


def fast_grpo_trainer_class() -> type:
    """`GRPOTrainer` with rollouts from `FastDecoder` (built here so importing this module needs no TRL)."""
    from trl import GRPOTrainer

    from rewardsearch.evaluate.decoder import FastDecoder, unsupported_reason

    class FastGRPOTrainer(GRPOTrainer):
        _fast: Any = None

        def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations,
                                  has_tool_images=False):  # noqa: ANN001 - TRL's signature
            if images is not None or multimodal_fields or self.tools or self.use_vllm:
                return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                     has_tool_images)
            model = self.accelerator.unwrap_model(self.model)
            if self._fast is None or self._fast.lm is not _causal(model):
                sampling, extras = sampling_settings(self.generation_config, None)
                reason = unsupported_reason(model, extras)
                if reason is not None:  # settings changed after the choice was made: say so, use TRL's path
                    print(f"rollout: TRL generate ({reason})", file=sys.stderr)
                    return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                         has_tool_images)
                self._fast = FastDecoder(model)
                self._fast_sampling = sampling
            completions = self._fast.generate(
                prompt_ids, self.max_completion_length, self.eos_token_ids, self._tokenizer.pad_token_id,
                sampling=self._fast_sampling,
            )
            return completions, None

    return FastGRPOTrainer


def _causal(model: Any) -> Any:
    from rewardsearch.evaluate.decoder import causal_lm

    return causal_lm(model)
