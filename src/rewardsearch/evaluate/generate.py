"""Batched greedy generation for evaluation: our fast decoder where it applies, else transformers' `generate`.

The evaluated model is always the adapter merged into a copy of the base weights (`merged_for_eval`), so both
backends see the same weights and the trained model is left untouched. Which backend ran, and why the fast one
did not, is returned beside the texts and stored with the evaluation.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def load_for_eval(model_dir: str | Path, adapter_dir: str | Path | None, device: str, dtype: Any) -> tuple[Any, Any]:
    """Base model with the LoRA adapter (when given) merged in, in eval mode, and its tokenizer."""
    from transformers import AutoModelForCausalLM

    from rewardsearch.models import load_tokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    model.eval()
    return model, load_tokenizer(model_dir)


def merged_for_eval(model: Any) -> Any:
    """A merged copy of a PEFT model (the live one keeps training or saving); a plain model as it is."""
    if hasattr(model, "merge_and_unload"):
        model = copy.deepcopy(model).merge_and_unload()
    return model.eval()


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """The stop tokens `generate` uses for this model (its generation config, else the tokenizer's EOS)."""
    from rewardsearch.evaluate.decoder import causal_lm

    gc = getattr(causal_lm(model), "generation_config", None)
    eos = getattr(gc, "eos_token_id", None) if gc is not None else None
    if eos is None:
        eos = tokenizer.eos_token_id
    return [int(e) for e in (eos if isinstance(eos, list | tuple) else [eos])]


def choose_backend(requested: str, model: Any, settings: dict[str, Any] | None = None) -> tuple[str, str | None]:
    """('fast' | 'hf', reason the fast path is not used). `fast` asked for and impossible is an error."""
    from rewardsearch.evaluate.decoder import causal_lm, unsupported_reason

    if requested == "hf":
        return "hf", "eval.generation=hf"
    device = next(causal_lm(model).parameters()).device
    reason = "no CUDA device (CPU runs transformers' generate)" if device.type != "cuda" else None
    reason = reason or unsupported_reason(model, settings)
    if reason is None:
        return "fast", None
    if requested == "fast":
        raise ValueError(f"eval.generation=fast: {reason}")
    return "hf", reason


def generate(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[list[dict[str, str]]],
    max_new_tokens: int,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
    backend: str = "auto",
    info: dict[str, Any] | None = None,
) -> list[str]:
    """Greedy completions for chat prompts, in input order. `info`, when given, receives the backend used."""
    chosen, reason = choose_backend(backend, model)
    if info is not None:
        info.update(backend=chosen, fallback_reason=reason if backend != "hf" else None)
    if chosen == "hf" and backend == "auto" and reason:
        print(f"eval: transformers generate ({reason})", file=sys.stderr)
    texts = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in conversations]
    if chosen == "fast":
        return _generate_fast(model, tokenizer, texts, max_new_tokens, batch_size, progress)
    return _generate_hf(model, tokenizer, texts, max_new_tokens, batch_size, progress)


def _generate_fast(
    model: Any, tokenizer: Any, texts: list[str], max_new_tokens: int, batch_size: int,
    progress: Callable[[int], None] | None, decoder: dict[str, Any] | None = None,
    calls: dict[str, Any] | None = None, timings: list[dict[str, Any]] | None = None,
) -> list[str]:
    """`decoder` / `calls`: FastDecoder's and its `generate`'s keyword arguments (benchmarks compare them);
    `timings` receives one record per batch."""
    from rewardsearch.evaluate.decoder import FastDecoder

    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"] if texts else []   # one batched call
    dec = FastDecoder(model, **(decoder or {}))
    eos = eos_token_ids(model, tokenizer)
    pad = tokenizer.pad_token_id
    # No prompt bucket: one call per batch, so no graph is reused, and generate's exact shapes are kept.
    kwargs = {"prompt_bucket": 1, **(calls or {})}
    out: list[str] = []
    for start in range(0, len(ids), batch_size):
        record: dict[str, Any] | None = {} if timings is not None else None
        rows = dec.generate(ids[start : start + batch_size], max_new_tokens, eos, pad, timings=record, **kwargs)
        if timings is not None and record is not None:
            timings.append(record)
        out.extend(tokenizer.batch_decode(rows, skip_special_tokens=True))
        if progress is not None:
            progress(len(rows))
    return out


def _generate_hf(
    model: Any, tokenizer: Any, texts: list[str], max_new_tokens: int, batch_size: int,
    progress: Callable[[int], None] | None,
) -> list[str]:
    import torch

    # Sorted by length so each batch pads little, then put back in order.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: list[str] = [""] * len(texts)
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # decoder-only: new tokens must follow the prompt directly
    device = next(model.parameters()).device
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(device) for k, v in enc.items()}
            with torch.inference_mode():
                gen = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    temperature=None,
                    top_p=None,
                    top_k=None,
                    repetition_penalty=1.0,   # plain greedy whatever the model's generation config says
                    eos_token_id=eos_token_ids(model, tokenizer),
                    pad_token_id=tokenizer.pad_token_id,
                )
            new = gen[:, enc["input_ids"].shape[1] :]
            for i, row in zip(idx, tokenizer.batch_decode(new, skip_special_tokens=True), strict=True):
                out[i] = row
            if progress is not None:
                progress(len(idx))
    finally:
        tokenizer.padding_side = old_side
    return out
