"""The pre-screen: real candidate rewards scored in their sandbox workers on a pool of completions; the pool
sampled by the base model itself (tiny model).

    python -m pytest tests/test_prescreen.py -q
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rewardsearch.config import Config, PrescreenConfig, SandboxConfig
from rewardsearch.rewards.spec import RewardSpec
from rewardsearch.screen.prescreen import POOL_FILE, WOULD_REJECT, PoolSpec, prescreen_check

_LAST = '''
import re


def _last(text):
    nums = re.findall(r"-?[0-9]+", text)
    return nums[-1] if nums else None
'''

REWARDS = {
    "constant": "def constant(prompts, completions, **kwargs):\n    return [0.5 for _ in completions]\n",
    "right_answer": _LAST + '''

def right_answer(prompts, completions, answer, **kwargs):
    return [1.0 if _last(c[-1]["content"]) == str(a) else 0.0 for c, a in zip(completions, answer)]
''',
    "wrong_answer": _LAST + '''

def wrong_answer(prompts, completions, answer, **kwargs):
    return [0.0 if _last(c[-1]["content"]) == str(a) else 1.0 for c, a in zip(completions, answer)]
''',
    "length": '''
def length(prompts, completions, **kwargs):
    return [len(c[-1]["content"]) / 100 for c in completions]
''',
    "broken": "def broken(prompts, completions, **kwargs):\n    raise ValueError('nope')\n",
    "silent": "def silent(prompts, completions, **kwargs):\n    return [None for _ in completions]\n",
}


def _pool() -> dict:
    """20 groups of 4: the right completion of each group is as often the long one as the short one."""
    groups = []
    for g in range(20):
        gold = str(10 + g)
        comps = [f"so the answer is {gold}", f"the answer is {int(gold) + 1}",
                 f"after a long and careful derivation the answer is {int(gold) + 2}", "I do not know"]
        if g % 2:
            comps[0] = f"after a long and careful derivation we get {gold}"
            comps[2] = f"it is {int(gold) + 2}"
        groups.append({"item_id": f"q{g}", "prompt": [{"role": "user", "content": f"question {g}"}], "answer": gold,
                       "completions": comps, "strict": [0] * 4, "flexible": [1, 0, 0, 0]})
    return {"groups": groups}


def _check(name: str, pool: dict | None = None, reject: bool = True):
    spec = RewardSpec(name=name, source=REWARDS[name], entrypoint=name)
    return prescreen_check(spec, pool or _pool(), PrescreenConfig(enabled=True, reject=reject),
                           SandboxConfig(call_timeout_s=5))


def test_a_reward_with_no_spread_is_rejected() -> None:
    res = _check("constant")
    assert not res.ok and res.reason.startswith("no within-group variance: 0 of 20 groups")
    assert res.details["signal_fraction"] == 0.0


def test_a_reward_that_pays_wrong_answers_is_rejected() -> None:
    res = _check("wrong_answer")
    assert not res.ok and res.reason.startswith("ranks wrong completions above right ones: mean within-group AUC 0.00")
    assert res.details["groups_wrong_above_right"] == 20 and res.details["p_wrong_above_right"] < 1e-5


def test_record_only_keeps_the_verdict_and_lets_the_candidate_train() -> None:
    # prescreen.reject=false: the same verdict, recorded (flag + reason in the details), not applied
    applied, recorded = _check("wrong_answer"), _check("wrong_answer", reject=False)
    assert not applied.ok and recorded.ok and recorded.reason is None
    assert recorded.flags == [WOULD_REJECT] and recorded.details["would_reject"] == applied.reason
    assert recorded.details["mean_auc"] == applied.details["mean_auc"] == 0.0
    kept = _check("right_answer", reject=False)
    assert kept.ok and kept.flags == [] and "would_reject" not in kept.details


def test_useful_and_neutral_rewards_pass() -> None:
    right = _check("right_answer")
    assert right.ok and right.details["mean_auc"] == 1.0 and right.details["signal_fraction"] == 1.0
    # length is not about correctness, but on this pool it orders right above wrong more often than not: kept
    length = _check("length")
    assert length.ok, length.reason
    assert length.details["mean_auc"] > 0.5 and length.details["groups_right_above_wrong"] >= 10


def test_without_groups_holding_both_outcomes_only_the_spread_is_judged() -> None:
    pool = _pool()
    for g in pool["groups"]:
        g["flexible"] = [0, 0, 0, 0]
    res = _check("wrong_answer", pool)
    assert res.ok and res.details["mixed_groups"] == 0 and res.details["mean_auc"] is None


def test_a_reward_failing_on_the_pool_is_rejected() -> None:
    broken = _check("broken")
    assert not broken.ok and "failed on the base-policy pool: quarantined after 3 failed calls" in broken.reason
    assert "ValueError: nope" in broken.reason
    silent = _check("silent")
    assert not silent.ok and "no score on any of the 20 groups" in silent.reason


def test_the_pool_is_sampled_by_the_base_model_with_correctness(tmp_path: Path, tiny_model_dir: Path) -> None:
    cfg = Config.model_validate({
        "task": {"arith": {"train_size": 16, "dev_size": 4, "test_size": 4}},
        "screen": {"max_completion_length": 10, "device": "cpu"},
        "prescreen": {"enabled": True, "prompts": 3, "samples": 4, "batch_size": 2},
    })
    out = tmp_path / "prescreen"
    out.mkdir()
    PoolSpec(out_dir=str(out), model_dir=str(tiny_model_dir), seed=0, task_seed=0,
             task=cfg.task.model_dump(mode="json"), model=cfg.model.model_dump(mode="json"),
             screen=cfg.screen.model_dump(mode="json"),
             prescreen=cfg.prescreen.model_dump(mode="json")).write(out / "spec.json")
    proc = subprocess.run([sys.executable, "-m", "rewardsearch.screen.prescreen", str(out / "spec.json")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    pool = json.loads((out / POOL_FILE).read_text())
    assert len(pool["groups"]) == 3 and pool["samples"] == 4 and pool["max_new_tokens"] == 10
    for g in pool["groups"]:
        assert len(g["completions"]) == len(g["strict"]) == len(g["flexible"]) == 4
        assert set(g["strict"]) | set(g["flexible"]) <= {0, 1}
    # sampled, not greedy: a random-weight model at temperature 1 writes different completions within a group
    assert any(len(set(g["completions"])) > 1 for g in pool["groups"])
    # a real candidate scored on the sampled pool in its sandbox
    res = prescreen_check(RewardSpec(name="length", source=REWARDS["length"], entrypoint="length"), pool,
                          cfg.prescreen, cfg.sandbox)
    assert res.details["groups"] == 3 and res.details["scored_groups"] == 3


def test_both_sampling_paths_give_k_completions_per_prompt_in_order(tiny_model_dir: Path, monkeypatch) -> None:
    # The CUDA path (the fast decoder) runs here on CPU without graphs: the same grouping as generate's path.
    import torch

    from rewardsearch.evaluate import generate as gen_mod
    from rewardsearch.evaluate.generate import load_for_eval
    from rewardsearch.screen import prescreen

    model, tok = load_for_eval(tiny_model_dir, None, "cpu", torch.float32)
    prompts = [[{"role": "user", "content": f"What is {i} + 1?"}] for i in range(3)]
    pcfg = PrescreenConfig(samples=4, batch_size=2)
    torch.manual_seed(0)
    hf = prescreen._sample(model, tok, prompts, 6, pcfg, 1.0)
    from rewardsearch.evaluate.decoder import FastDecoder

    calls = []
    real = FastDecoder.generate
    monkeypatch.setattr(FastDecoder, "generate", lambda self, p, *a, **k: calls.append(len(p)) or real(self, p, *a, **k))
    monkeypatch.setattr(gen_mod, "choose_backend", lambda requested, model, settings=None: ("fast", None))
    torch.manual_seed(0)
    fast = prescreen._sample(model, tok, prompts, 6, pcfg, 1.0)
    assert calls == [12]   # the whole pool in one batch
    for out in (hf, fast):
        assert [len(g) for g in out] == [4, 4, 4]
        assert all(isinstance(c, str) for g in out for c in g)
    assert len({c for g in fast for c in g}) > 3   # sampled, not one greedy answer repeated
