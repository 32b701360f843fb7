"""A non-finite gradient skips its optimizer step instead of writing NaN into the adapter (`screen/nonfinite.py`),
driven through a real tiny-model GRPO trial with the `nangrad` fault hook.

    python -m pytest tests/test_nonfinite.py -q
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from test_rungs import _safetensors, _with_stop
from test_trial import VARIETY, _run, _spec

from rewardsearch.execute.faults import FAULT_ENV
from rewardsearch.rewards.spec import RewardSpec

REWARD = RewardSpec(name="variety", source=VARIETY, entrypoint="variety").to_dict()


def _grad_norms(train: dict) -> dict[int, float]:
    return {h["step"]: h["grad_norm"] for h in train["log_history"] if "grad_norm" in h}


def _all_finite(path: Path) -> bool:
    import torch

    return all(bool(torch.isfinite(t).all()) for t in _safetensors(path).values())


def test_a_nan_gradient_skips_its_step_and_training_goes_on(tmp_path: Path, tiny_model_dir: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAULT_ENV, "nangrad")   # one gradient NaN at optimizer step 2, as on the H200
    out = _spec(tmp_path, tiny_model_dir, [REWARD], steps=4, checkpoint_every=0)
    _with_stop(out, 3)   # a rung stop records the optimizer's own step count
    proc = _run(out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "skipped optimizer step 2: non-finite gradients" in proc.stderr
    train = json.loads((out / "train.json").read_text())
    assert train["state"] == "done" and train["steps"] == 3
    norms = _grad_norms(train)
    assert not math.isfinite(norms[2]) and math.isfinite(norms[1]) and math.isfinite(norms[3])
    assert [s["step"] for s in train["skipped_steps"]] == [2] and train["skipped_steps"][0]["n_params"] >= 1
    # AdamW counted two updates for three steps: step 2 moved nothing; without the guard it is 3 and the
    # clip by a NaN norm leaves every weight NaN
    assert train["training_state"]["stop"]["optimizer_step"] == 2
    assert _all_finite(out / "adapter" / "adapter_model.safetensors")
    assert train["lora"]["delta_l2"] > 0 and math.isfinite(train["lora"]["delta_l2"])
    # the default trainer leaves cuDNN attention out of the training pass (pytorch#196678)
    assert train["training_attention"]["cudnn_sdpa"] is False


def test_a_trial_that_skips_most_of_its_steps_fails_with_the_reason(tmp_path: Path, tiny_model_dir: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # the final stage's arms train their whole budget (no early stop): such an arm must not be evaluated as trained
    monkeypatch.setenv(FAULT_ENV, "nangrads")
    out = _spec(tmp_path, tiny_model_dir, [REWARD], steps=4, checkpoint_every=0)
    proc = _run(out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    train = json.loads((out / "train.json").read_text())
    assert train["state"] == "failed" and train["steps"] == 4
    assert train["reason"] == "non-finite gradients on 3 of 4 optimizer steps (skipped)"
    assert [s["step"] for s in train["skipped_steps"]] == [2, 3, 4]
    assert not (out / "eval_dev.json").exists()


def test_training_steps_run_without_cudnn_attention_and_rollouts_may_put_it_back() -> None:
    import torch

    from rewardsearch.screen.nonfinite import sdpa_backends, without_cudnn_attention

    class Trainer:
        def training_step(self, model: object, inputs: object) -> tuple[bool, bool, bool]:
            with sdpa_backends(cudnn=True):   # a rollout inside the step, as FastGRPOTrainer's
                rollout = torch.backends.cuda.cudnn_sdp_enabled()
            return torch.backends.cuda.cudnn_sdp_enabled(), torch.backends.cuda.mem_efficient_sdp_enabled(), rollout

    assert torch.backends.cuda.cudnn_sdp_enabled()
    wrapped = without_cudnn_attention(Trainer)
    assert wrapped.__name__ == "Trainer" and issubclass(wrapped, Trainer)
    assert wrapped().training_step(None, None) == (False, True, True)
    assert Trainer().training_step(None, None) == (True, True, True)
    assert torch.backends.cuda.cudnn_sdp_enabled()   # restored after the step


def _train_json(steps: list[float], skipped: list[int]) -> dict:
    return {"state": "done", "steps": len(steps), "skipped_steps": [{"step": s} for s in skipped],
            "log_history": [{"step": i + 1, "loss": 0.1, "grad_norm": g} for i, g in enumerate(steps)]}


def test_a_stored_final_trial_whose_weights_were_lost_is_withdrawn_and_trained_again(tmp_path: Path) -> None:
    from conftest import make_synthetic_run

    from rewardsearch.config import Config
    from rewardsearch.search.finals import FinalStage, arm_seeds, arm_trial_id
    from rewardsearch.store import Store

    run_dir = make_synthetic_run(tmp_path / "run")
    store = Store.in_dir(run_dir)
    cfg = Config.model_validate(store.get_meta("config"))
    base = next(a for a in store.arms() if a.strategy == "base")
    lost, kept = (arm_trial_id(base, s) for s in arm_seeds(cfg)[:2])
    nan = float("nan")
    for tid, train in ((lost, _train_json([0.3, 0.4, nan, nan], [])), (kept, _train_json([0.3, nan, 0.2], [2]))):
        d = run_dir / "trials" / tid
        (d / "adapter").mkdir(parents=True)
        (d / "train.json").write_text(json.dumps(train))
        (d / "eval_test.json").write_text("{}")
    before = store.eval(lost, "test").accuracy
    stage = FinalStage(run_dir, cfg, store)

    assert stage._needs_job(lost) and not stage._needs_job(kept)
    rec = store.trial(lost)
    assert rec.state == "failed" and rec.metrics["infra"] is True
    assert rec.reason == ("infrastructure: numerical: non-finite gradient applied at step 3 (weights lost; trained "
                          "before non-finite steps were skipped)")
    assert store.eval(lost, "test") is None and store.eval(lost, "dev") is None
    assert store.eval(kept, "test") is not None and store.trial(kept).state == "done"
    voided = store.events("trial_voided")
    assert [e["trial"] for e in voided] == [lost] and voided[0]["evals"]["test"] == before
    aside = run_dir / "trials" / lost / "lost-1"
    assert (aside / "train.json").is_file() and (aside / "adapter").is_dir() and (aside / "eval_test.json").is_file()
    assert not (run_dir / "trials" / lost / "train.json").exists()
    # asked again (a resumed `ensemble DIR`): still to train, nothing withdrawn twice
    assert stage._needs_job(lost) and len(store.events("trial_voided")) == 1


def test_a_resumed_trial_keeps_the_steps_skipped_before_its_checkpoint(tmp_path: Path, tiny_model_dir: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from rewardsearch.screen.outputs import lost_weights

    monkeypatch.setenv(FAULT_ENV, "nangrad")
    out = _spec(tmp_path, tiny_model_dir, [REWARD], steps=4, checkpoint_every=0)
    _with_stop(out, 3)   # stops at step 3 with a checkpoint, as a rung (or a kill after a save) leaves it
    assert _run(out).returncode == 0
    monkeypatch.delenv(FAULT_ENV)
    _with_stop(out, None)   # promoted: continues from checkpoint-3 to step 4
    proc = _run(out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    train = json.loads((out / "train.json").read_text())
    assert train["state"] == "done" and train["steps"] == 4 and train["resumed_from_step"] == 3
    assert not math.isfinite(_grad_norms(train)[2])   # the checkpoint's log history holds the NaN step
    assert [s["step"] for s in train["skipped_steps"]] == [2]
    assert lost_weights(train) is None   # skipped, so not taken for weights lost


def test_a_trial_that_skipped_steps_is_flagged_in_the_leaderboard(tmp_path: Path) -> None:
    from conftest import make_synthetic_run

    from rewardsearch.search.ranking import leaderboard, trial_id_for
    from rewardsearch.store import Store

    store = Store.in_dir(make_synthetic_run(tmp_path / "run"))
    cid = store.candidates()[0]["id"]
    rec = store.trial(trial_id_for(cid, 0))
    rec.metrics["skipped_steps"] = [{"step": 9, "params": ["q_proj"], "n_params": 324}, {"step": 29}]
    store.upsert_trial(rec)
    rows = {r["id"]: r for r in leaderboard(store, 0)}
    assert "numerics: skipped 2 optimizer steps with non-finite gradients (9, 29)" in rows[cid]["flags"]
    assert rows[cid]["trial"]["skipped_steps"] == [9, 29]
    others = [r for k, r in rows.items() if k != cid]
    assert not any(f.startswith("numerics") for r in others for f in r["flags"])
