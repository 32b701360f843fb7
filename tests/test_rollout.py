"""Fast rollouts inside TRL's GRPOTrainer (CPU: the decoder without graphs), against TRL's own path."""

from __future__ import annotations

from pathlib import Path

import pytest

from rewardsearch.screen.rollout import choose_rollout, fast_grpo_trainer_class, trl_supported


def _length_reward(prompts, completions, **kwargs):   # test-owned, trusted: runs in-process
    return [float(len(c[-1]["content"])) for c in completions]


def _trainer(cls, model_dir: Path, out: Path):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig

    from rewardsearch.config import LoraConfigSection
    from rewardsearch.models import lora_config

    tok = AutoTokenizer.from_pretrained(model_dir)
    ds = Dataset.from_list([{"prompt": [{"role": "user", "content": f"What is {i} + {i}?"}]} for i in range(8)])
    args = GRPOConfig(output_dir=str(out), max_steps=2, per_device_train_batch_size=4, num_generations=4,
                      max_completion_length=10, learning_rate=1e-2, beta=0.0, logging_steps=1, report_to="none",
                      use_cpu=True, save_strategy="no", disable_tqdm=True, seed=0, temperature=0.9, top_p=0.95)
    return cls(model=AutoModelForCausalLM.from_pretrained(model_dir), reward_funcs=[_length_reward], args=args,
               train_dataset=ds, processing_class=tok, peft_config=lora_config(LoraConfigSection(r=4)))


def test_installed_trl_is_in_the_pinned_range():
    assert trl_supported() is None


def test_fast_trainer_trains_with_trl_logging_and_samples_from_the_live_adapter(tiny_model_dir, tmp_path):
    from trl import GRPOTrainer

    trainer = _trainer(fast_grpo_trainer_class(), tiny_model_dir, tmp_path / "fast")
    calls = []
    inner = trainer._generate_single_turn

    def spy(prompt_ids, *a, **k):
        out = inner(prompt_ids, *a, **k)
        calls.append((len(prompt_ids), out))
        return out

    trainer._generate_single_turn = spy
    trainer.train()
    assert trainer._fast is not None            # our decoder made the rollouts
    assert [n for n, _ in calls] == [4, 4]
    for _, (ids, logprobs) in calls:
        assert logprobs is None and all(1 <= len(r) <= 10 for r in ids)
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logged) == 2
    ref = _trainer(GRPOTrainer, tiny_model_dir, tmp_path / "trl")
    ref.train()
    ref_logged = [h for h in ref.state.log_history if "loss" in h]
    # TRL's bookkeeping is the same on both paths: the same metrics, the same completion budget
    assert set(logged[0]) == set(ref_logged[0])
    assert all(h["completions/max_length"] <= 10 for h in logged + ref_logged)


def test_fast_asked_for_where_it_cannot_run_is_an_error(tiny_model_dir):
    from transformers import AutoModelForCausalLM
    from trl import GRPOConfig

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    args = GRPOConfig(output_dir="/tmp/unused", use_cpu=True, report_to="none")
    assert choose_rollout("auto", model, "cpu", args)[0] == "trl"
    with pytest.raises(ValueError, match="screen.generation=fast: no CUDA"):
        choose_rollout("fast", model, "cpu", args)
    assert choose_rollout("trl", model, "cuda", args) == ("trl", "screen.generation=trl")


def _peft_model(model_dir: Path | None, **lora):
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    from rewardsearch.config import LoraConfigSection
    from rewardsearch.models import lora_config

    if model_dir is None:   # no tokenizer needed: a tiny Llama of 96 token ids (as tests/test_decoder.py builds)
        torch.manual_seed(0)
        base = LlamaForCausalLM(LlamaConfig(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                            num_attention_heads=4, num_key_value_heads=2, eos_token_id=2,
                                            pad_token_id=0, bos_token_id=1, tie_word_embeddings=True))
    else:
        base = AutoModelForCausalLM.from_pretrained(model_dir)
    model = get_peft_model(base, lora_config(LoraConfigSection(r=4, **lora)))
    torch.manual_seed(1)
    with torch.no_grad():   # a trained-looking adapter: B is zero at init, so the fold would be invisible
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    return model.eval()


def test_merged_copy_matches_the_live_adapter_after_every_refresh(tiny_model_dir):
    import torch

    from rewardsearch.screen.rollout import MergedCopy, merge_unsupported

    model = _peft_model(tiny_model_dir)
    assert merge_unsupported(model) is None
    merged = MergedCopy(model)
    ids = torch.tensor([[1, 5, 9, 40, 2, 77, 3]])
    with torch.no_grad():
        live0 = model(input_ids=ids).logits
        assert torch.allclose(merged.model(input_ids=ids).logits, live0, atol=1e-4)
        for n, p in model.named_parameters():   # an optimizer step, in place
            if "lora_A" in n:
                p.add_(torch.randn_like(p) * 0.3)
        live1 = model(input_ids=ids).logits
        assert not torch.allclose(live1, live0, atol=1e-3)
        stale = merged.model(input_ids=ids).logits
        assert not torch.allclose(stale, live1, atol=1e-3)       # without a refresh the copy is stale ...
        weight = merged.model.model.layers[0].self_attn.q_proj.weight
        before = weight.data_ptr()
        merged.refresh()
        assert weight.data_ptr() == before                        # ... and a refresh writes in place (graphs)
        assert torch.allclose(merged.model(input_ids=ids).logits, live1, atol=1e-4)
    assert not any(p.requires_grad for p in merged.model.parameters())


def test_merged_copy_refuses_what_it_cannot_fold(tiny_model_dir):
    from rewardsearch.screen.rollout import merge_unsupported

    tied = _peft_model(tiny_model_dir, target_modules=["q_proj", "lm_head"])
    assert "tied" in merge_unsupported(tied)


def test_fast_trainer_samples_from_the_merged_copy_by_default_and_live_when_asked(tiny_model_dir, tmp_path):
    merged = _trainer(fast_grpo_trainer_class(), tiny_model_dir, tmp_path / "m")
    merged.train()
    assert merged.rollout_weights == {"weights": "merged", "reason": None}
    # the copy holds the last rollout's weights: base + the adapter of the step before the last update
    assert merged._merged is not None and merged._fast.lm is merged._merged.model
    live = _trainer(fast_grpo_trainer_class("live"), tiny_model_dir, tmp_path / "l")
    live.train()
    assert live.rollout_weights == {"weights": "live", "reason": None} and live._merged is None
    with pytest.raises(ValueError, match="rollout weights 'fused'"):
        fast_grpo_trainer_class("fused")


def test_cuda_graph_on_the_merged_copy_follows_each_refresh():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    from rewardsearch.evaluate.decoder import FastDecoder
    from rewardsearch.screen.rollout import MergedCopy

    model = _peft_model(None).cuda()
    merged = MergedCopy(model)
    dec = FastDecoder(merged.model)
    prompts = [[1, 5, 9, 40], [7, 8, 2, 11, 12, 13, 50]]

    def live_greedy():
        with torch.no_grad():
            ids = torch.tensor([[0] * (7 - len(p)) + p for p in prompts], device="cuda")
            mask = (torch.arange(7, device="cuda")[None] >= torch.tensor([7 - len(p) for p in prompts],
                                                                        device="cuda")[:, None]).long()
            gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=12, do_sample=False,
                                 eos_token_id=2, pad_token_id=0, temperature=None, top_p=None, top_k=None)
        return [r[: r.index(2) + 1] if 2 in r else r for r in gen[:, 7:].tolist()]

    first = dec.generate(prompts, 12, [2], 0)
    assert first == live_greedy()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.mul_(-1.0)
    merged.refresh()
    second = dec.generate(prompts, 12, [2], 0)
    assert second != first and second == live_greedy()
