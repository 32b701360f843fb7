"""One screening trial, for real: TRL GRPOTrainer + PEFT LoRA on a tiny model, a sandboxed candidate reward,
then batched greedy evaluation of the adapter.

    python -m pytest tests/test_trial.py -q
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rewardsearch.config import Config
from rewardsearch.rewards.spec import RewardSpec
from rewardsearch.screen.trial import TrialSpec

# Pays for distinct characters: random-weight text varies in it, so every GRPO group has reward variance and
# the LoRA B matrices (zero at init) must move.
VARIETY = '''
def variety(prompts, completions, answer, **kwargs):
    return [len(set(c[-1]["content"])) / 10 for c in completions]
'''


def _spec(tmp_path: Path, model_dir: Path, rewards: list[dict], **screen) -> Path:
    cfg = Config.model_validate({
        "task": {"arith": {"train_size": 16, "dev_size": 6, "test_size": 4}},
        "screen": {"steps": 2, "num_generations": 4, "prompts_per_step": 1, "max_completion_length": 12,
                   "learning_rate": 1e-2, "beta": 0.0, "device": "cpu", **screen},
        "eval": {"dev_size": 6, "max_new_tokens": 12, "batch_size": 4},
        "sandbox": {"call_timeout_s": 5},
    })
    out = tmp_path / "trial"
    spec = TrialSpec(
        trial_id="t1", out_dir=str(out), model_dir=str(model_dir), seed=0, task_seed=0,
        task=cfg.task.model_dump(mode="json"), model=cfg.model.model_dump(mode="json"),
        screen=cfg.screen.model_dump(mode="json"), sandbox=cfg.sandbox.model_dump(mode="json"),
        eval=cfg.eval.model_dump(mode="json"), rewards=rewards,
    )
    out.mkdir(parents=True)
    spec.write(out / "spec.json")
    return out


def _run(out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rewardsearch.screen.trial", str(out / "spec.json")],
                          capture_output=True, text=True, timeout=600)


def test_trial_trains_lora_logs_per_reward_curves_and_evaluates(tmp_path: Path, tiny_model_dir: Path) -> None:
    reward = RewardSpec(name="variety", source=VARIETY, entrypoint="variety").to_dict()
    out = _spec(tmp_path, tiny_model_dir, [reward])
    proc = _run(out)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    train = json.loads((out / "train.json").read_text())
    assert train["state"] == "done" and train["steps"] == 2
    # B matrices start at zero; with reward variance GRPO must move them (A alone moves by weight decay)
    assert train["lora"]["tensors_changed"] == train["lora"]["tensors"]
    assert train["lora"]["delta_l2"] > 0
    logged = train["log_history"][0]
    for key in ("rewards/variety/mean", "rewards/answer_reward/std", "reward_std", "frac_reward_zero_std",
                "completions/mean_length", "entropy"):
        assert key in logged, key
    assert (out / "adapter" / "adapter_config.json").is_file()
    ev = json.loads((out / "eval_dev.json").read_text())
    assert len(ev["item_ids"]) == len(ev["correct"]) == 6 and set(ev["correct"]) <= {0, 1}
    assert train["reward_stats"]["variety"]["calls"] >= 2


def test_a_reward_that_keeps_failing_is_quarantined_and_the_trial_fails(tmp_path: Path, tiny_model_dir: Path) -> None:
    broken = RewardSpec(name="broken", entrypoint="broken",
                        source="def broken(prompts, completions, **kwargs):\n    raise ValueError('nope')\n")
    out = _spec(tmp_path, tiny_model_dir, [broken.to_dict()], steps=4)
    proc = _run(out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    train = json.loads((out / "train.json").read_text())
    assert train["state"] == "failed"
    assert "quarantined" in train["reason"] and "ValueError: nope" in train["reason"]
    assert not (out / "eval_dev.json").exists()


def test_a_killed_trial_continues_from_its_checkpoint(tmp_path: Path, tiny_model_dir: Path) -> None:
    import os
    import signal
    import time

    reward = RewardSpec(name="variety", source=VARIETY, entrypoint="variety").to_dict()
    out = _spec(tmp_path, tiny_model_dir, [reward], steps=7, checkpoint_every=2)
    proc = subprocess.Popen([sys.executable, "-m", "rewardsearch.screen.trial", str(out / "spec.json")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    steps_log = out / "steps.log"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if steps_log.is_file() and len(steps_log.read_text().split("\n")) > 3:   # step 3 done: past one checkpoint
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)   # the trainer and its reward workers, mid-training
    proc.wait()
    assert not (out / "train.json").exists(), "the trial finished before it could be killed"
    killed_at = max(int(line.split()[0]) for line in steps_log.read_text().splitlines())
    assert killed_at >= 3

    again = _run(out)
    assert again.returncode == 0, again.stderr[-2000:]
    train = json.loads((out / "train.json").read_text())
    assert train["state"] == "done" and train["steps"] == 7
    resumed = train["resumed_from_step"]
    assert resumed is not None and 2 <= resumed <= killed_at and resumed % 2 == 0
    # the log history is whole: one entry per step, 1..7, across the kill
    assert [h["step"] for h in train["log_history"] if "loss" in h] == list(range(1, 8))
    # steps up to the checkpoint were trained once; only those after it ran again
    trained = [int(line.split()[0]) for line in steps_log.read_text().splitlines()]
    assert all(trained.count(s) == 1 for s in range(1, resumed + 1))
    assert trained[-1] == 7 and set(trained) == set(range(1, 8))
    assert not (out / "hf").exists()   # checkpoints are removed once the trial is done


def test_screen_trl_settings_reach_the_trainer(tmp_path: Path, tiny_model_dir: Path) -> None:
    reward = RewardSpec(name="variety", source=VARIETY, entrypoint="variety").to_dict()
    trl = {"loss_type": "dr_grpo", "gradient_accumulation_steps": 2, "epsilon": 0.3}
    out = _spec(tmp_path, tiny_model_dir, [reward], trl=trl)
    proc = _run(out)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    train = json.loads((out / "train.json").read_text())
    assert train["state"] == "done" and train["steps"] == 2
    assert train["trl"] == trl   # read back from trainer.args, not from the spec
    # two batches of fresh completions per optimizer step: the candidate reward scored twice as many batches
    assert train["reward_stats"]["variety"]["calls"] == 2 * 2


def test_report_to_tensorboard_passes_through_to_trl(tmp_path: Path, tiny_model_dir: Path) -> None:
    import pytest

    pytest.importorskip("tensorboard")
    reward = RewardSpec(name="variety", source=VARIETY, entrypoint="variety").to_dict()
    out = _spec(tmp_path, tiny_model_dir, [reward], report_to=["tensorboard"])
    proc = _run(out)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    train = json.loads((out / "train.json").read_text())
    assert train["state"] == "done" and train["report_to"] == ["tensorboard"]
    # the trial's own directory (not hf/, which a finished trial removes), with TRL's per-reward scalars in it
    events = list((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert events, list(out.rglob("*"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert any("rewards/variety/mean" in tag for tag in acc.Tags()["scalars"]), acc.Tags()["scalars"]
