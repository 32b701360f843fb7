"""Shared fixtures: a tiny real causal LM (random weights, the embedded model's real tokenizer) built once.

The tiny model makes a GRPO step take about a second on two CPU cores, so end-to-end tests exercise the real
TRL + PEFT + generation path without the 135M model's minutes; tests marked `slow` use the embedded model.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def embedded_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded SmolLM2-135M-Instruct as a plain transformers directory (converted from the wheel once)."""
    from rewardsearch.config import ModelConfig
    from rewardsearch.models import ModelNotAvailable, resolve_model

    try:
        return resolve_model(ModelConfig(name="embedded"))
    except ModelNotAvailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def tiny_model_dir(embedded_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide Llama with SmolLM2's tokenizer and chat template; random but fixed weights."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny-model")
    tok = AutoTokenizer.from_pretrained(embedded_model_dir)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=1024, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out
