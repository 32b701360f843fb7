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
