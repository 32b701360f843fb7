"""Config tree: presets load, overrides are strict, bad values fail on one line naming key and value.

    python -m pytest tests/test_config.py -q
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rewardsearch.config import PRESETS, Config, ConfigError, load_config, parse_overrides


@pytest.mark.parametrize("name", PRESETS)
def test_every_shipped_preset_loads(name: str) -> None:
    cfg = load_config(preset=name)
    assert isinstance(cfg, Config)


def test_paper_preset_matches_the_published_setting() -> None:
    cfg = load_config(preset="paper")
    assert cfg.model.name == "meta-llama/Llama-3.2-3B-Instruct"
    assert cfg.task.name == "gsm8k"
    assert (cfg.search.rounds, cfg.search.candidates_per_round, cfg.screen.steps) == (5, 10, 500)
    assert (cfg.model.lora.r, cfg.model.lora.alpha, cfg.model.lora.target_modules) == (32, 32, "all-linear")
    assert cfg.screen.learning_rate == 5e-6 and cfg.screen.num_generations == 4
    assert cfg.screen.lr_scheduler == "cosine" and cfg.screen.weight_decay == 0.1
    assert cfg.screen.warmup_ratio == 0.1 and cfg.screen.max_grad_norm == 1.0
    assert cfg.proposer.name == "llm" and cfg.proposer.base_url


def test_smoke_asks_for_a_format_the_embedded_model_writes_and_paper_keeps_the_tags() -> None:
    from rewardsearch.tasks import load_task

    smoke = load_task(load_config(preset="smoke").task, 0)
    paper = load_task(load_config(preset="paper").task, 0)
    # SmolLM2-135M never writes the tags (strict 0 for every reward); under hashes it answers (presets/smoke.yaml)
    assert smoke.answer_format.name == "hashes" and "####" in smoke.prompt(smoke.split("dev")[0])[0]["content"]
    assert paper.answer_format.name == "tags"


def test_overrides_apply_with_types() -> None:
    cfg = load_config(preset="smoke", overrides=["screen.steps=7", "task.name=gsm8k", "seed=3"])
    assert (cfg.screen.steps, cfg.task.name, cfg.seed) == (7, "gsm8k", 3)


def test_unknown_key_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'screen.step' \(did you mean 'screen.steps'\?\)"):
        load_config(preset="smoke", overrides=["screen.step=3"])


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("screen.steps=0", "screen.steps=0"),
        ("task.name=mnist", "task.name='mnist'"),
        ("eval.dev_size=abc", "eval.dev_size='abc'"),
        ("screen.num_generations=1", "screen.num_generations=1"),
        ("proposer.name=gpt", "proposer.name='gpt'"),
    ],
)
def test_bad_value_is_one_line_naming_key_and_value(override: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(preset="smoke", overrides=[override])
    msg = str(info.value)
    assert needle in msg and "\n" not in msg


def test_cross_field_error_names_both_keys() -> None:
    with pytest.raises(ConfigError, match="proposer.base_url"):
        load_config(overrides=["proposer.name=llm"])


def test_malformed_override_and_missing_file() -> None:
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_overrides(["screen.steps"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(path="/nonexistent/config.yaml")
    with pytest.raises(ConfigError, match="did you mean 'smoke'"):
        load_config(preset="smok")


def test_yaml_file_and_hash(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("search:\n  rounds: 2\n")
    a = load_config(path=p)
    assert a.search.rounds == 2
    assert a.hash() != load_config(path=p, overrides=["seed=1"]).hash()
    assert a.hash() == load_config(path=p).hash()


# --- screen.trl: GRPOConfig fields passed through to TRL ---------------------------------------------------


def test_trl_fields_pass_through_and_survive_a_round_trip() -> None:
    cfg = load_config(preset="smoke", overrides=["screen.trl.loss_type=dr_grpo", "screen.trl.num_iterations=2",
                                                 "screen.trl.scale_rewards=none"])
    assert cfg.screen.trl == {"loss_type": "dr_grpo", "num_iterations": 2, "scale_rewards": "none"}
    # the trial process reads the section back from JSON (TrialSpec) and validates it again
    assert Config.model_validate_json(cfg.model_dump_json()).screen.trl == cfg.screen.trl
    assert cfg.hash() != load_config(preset="smoke").hash()   # provenance: a passed-through setting changes the run


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("screen.trl.loss_typ=dr_grpo",
         r"^screen\.trl\.loss_typ: not a field of GRPOConfig in the installed TRL [0-9.]+\S* "
         r"\(did you mean 'loss_type'\?\)$"),
        ("screen.trl.max_steps=3", r"^screen\.trl\.max_steps is set by the trial itself: set screen\.steps$"),
        ("screen.trl.per_device_train_batch_size=8", r"^screen\.trl\.per_device_train_batch_size is set by the trial "
                                                     r"itself: set screen\.prompts_per_step"),
        ("screen.trl.output_dir=/tmp/x", r"^screen\.trl\.output_dir is set by the trial itself: the executor"),
        ("screen.trl.num_iterations=many", r"^screen\.trl\.num_iterations='many': GRPOConfig expects int$"),
        ("screen.tlr.loss_type=dr_grpo", r"^unknown key 'screen\.tlr' \(did you mean 'screen\.trl'\?\)$"),
    ],
)
def test_bad_trl_field_is_one_line(override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(preset="smoke", overrides=[override])
    msg = str(err.value)
    assert "\n" not in msg
    assert re.search(expected, msg), msg


def test_trl_tables_name_real_fields_and_the_trial_wins() -> None:
    import dataclasses

    from trl import GRPOConfig

    from rewardsearch.screen import trl_args

    fields = {f.name for f in dataclasses.fields(GRPOConfig)}
    # warmup_ratio exists in transformers 4.x only, warmup_steps in both: the trial sets whichever is there
    assert set(trl_args.OWNED) - fields <= {"warmup_ratio"}
    assert set(trl_args.DEFAULTS) <= fields and not set(trl_args.DEFAULTS) & set(trl_args.OWNED)
    kwargs = trl_args.build({"gradient_accumulation_steps": 4, "loss_type": "dr_grpo"}, {"max_steps": 7})
    assert kwargs["gradient_accumulation_steps"] == 4 and kwargs["loss_type"] == "dr_grpo"
    assert kwargs["max_steps"] == 7 and kwargs["steps_per_generation"] == 1
    with pytest.raises(RuntimeError, match="missing from trl_args.OWNED: \\['loss_type'\\]"):
        trl_args.build({}, {"loss_type": "grpo"})   # a field the trial sets must be refused to screen.trl
