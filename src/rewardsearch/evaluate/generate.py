"""Batched greedy generation with Hugging Face transformers (left padding, one model load per evaluation)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def load_for_eval(model_dir: str | Path, adapter_dir: str | Path | None, device: str, dtype: Any) -> tuple[Any, Any]:
    """Base model (plus the LoRA adapter when given) in eval mode, and its tokenizer."""
    from transformers import AutoModelForCausalLM

    from rewardsearch.models import load_tokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir))
    model.eval()
    return model, load_tokenizer(model_dir)


def generate(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[list[dict[str, str]]],
    max_new_tokens: int,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Greedy completions for chat prompts, in input order.

    Prompts are sorted by length so each batch pads little, then put back in order.
    """
    import torch

    texts = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in conversations]
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
