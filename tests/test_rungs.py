"""Successive halving on the tiny model: a trial stopped at a rung and promoted continues from its checkpoint;
early stop of a dead trial; the promotion rule on real statistics.

    python -m pytest tests/test_rungs.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_trial import VARIETY, _run, _spec

from rewardsearch.config import EarlyStopConfig
from rewardsearch.evaluate.stats import BootstrapSettings
from rewardsearch.rewards.spec import RewardSpec
from rewardsearch.screen.early_stop import dead_reason
from rewardsearch.screen.halving import DROPPED, PROMOTED, RungResult, promote
from rewardsearch.screen.trial import TrialSpec, rung_eval_name
from rewardsearch.search.ranking import trial_id_for
from rewardsearch.store import Store

CONSTANT = "def constant(prompts, completions, **kwargs):\n    return [1.0 for _ in completions]\n"


def _steps_logged(train: dict) -> list[int]:
    return [h["step"] for h in train["log_history"] if "loss" in h]


def _with_stop(out: Path, stop_at: int | None, early_stop: bool = False) -> None:
    spec = TrialSpec.read(out / "spec.json")
    spec.stop_at, spec.early_stop = stop_at, early_stop
    spec.write(out / "spec.json")


def _safetensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def test_a_promoted_trial_continues_from_its_rung_checkpoint(tmp_path: Path, tiny_model_dir: Path) -> None:
    reward = RewardSpec(name="variety", source=VARIETY, entrypoint="variety").to_dict()
    # warmup 1 step, then cosine to step 6: a learning rate that changes at every step, so a restarted schedule shows
    screen = {"steps": 6, "checkpoint_every": 0, "warmup_ratio": 0.1}
    halved = _spec(tmp_path / "halved", tiny_model_dir, [reward], **screen)
    straight = _spec(tmp_path / "straight", tiny_model_dir, [reward], **screen)

    _with_stop(halved, 3)
    first = _run(halved)
    assert first.returncode == 0, first.stderr[-2000:]
    at_rung = json.loads((halved / "train.json").read_text())
    assert at_rung["state"] == "done" and at_rung["steps"] == 3 and at_rung["stop_at"] == 3
    assert _steps_logged(at_rung) == [1, 2, 3]
    # the rung's checkpoint is kept (checkpoint_every=0 saves nothing else); the dev slice is evaluated
    ckpt = halved / "hf" / "checkpoint-3"
    assert (ckpt / "optimizer.pt").is_file() and (ckpt / "scheduler.pt").is_file()
    assert (halved / rung_eval_name(3)).is_file() and not (halved / "eval_dev.json").exists()
    adapter_at_rung = _safetensors(halved / "adapter" / "adapter_model.safetensors")
    in_checkpoint = _safetensors(ckpt / "adapter_model.safetensors")
    assert adapter_at_rung.keys() == in_checkpoint.keys()
    assert all(bool((adapter_at_rung[k] == in_checkpoint[k]).all()) for k in adapter_at_rung)
    stop = at_rung["training_state"]["stop"]
    assert stop["global_step"] == 3 and stop["optimizer_step"] == 3

    _with_stop(halved, None)   # promoted to the final rung
    second = _run(halved)
    assert second.returncode == 0, second.stderr[-2000:]
    done = json.loads((halved / "train.json").read_text())
    assert done["state"] == "done" and done["steps"] == 6 and done["resumed_from_step"] == 3
    start = done["training_state"]["start"]
    # global step, the optimizer's own step count (Adam moments restored, not reset), the learning rate and the
    # very adapter it stopped with: the promoted trial starts exactly where the rung left it
    assert start == stop, (start, stop)
    assert _steps_logged(done) == list(range(1, 7))
    steps = [int(line.split()[0]) for line in (halved / "steps.log").read_text().splitlines()]
    assert steps == list(range(1, 7)), "a step was trained twice or skipped"
    assert not (halved / "hf").exists() and (halved / "eval_dev.json").is_file()

    # the same trial without a rung: the learning-rate schedule is the one the halved trial followed
    ref = _run(straight)
    assert ref.returncode == 0, ref.stderr[-2000:]
    plain = json.loads((straight / "train.json").read_text())
    lr = {h["step"]: h["learning_rate"] for h in done["log_history"] if "loss" in h}
    lr_plain = {h["step"]: h["learning_rate"] for h in plain["log_history"] if "loss" in h}
    assert lr == lr_plain and len(set(lr.values())) >= 4
    # and the training itself continued exactly: same losses and rewards at every step, same final adapter
    for key in ("loss", "reward", "rewards/variety/mean"):
        assert [h[key] for h in done["log_history"] if "loss" in h] == \
               [h[key] for h in plain["log_history"] if "loss" in h], key
    a = _safetensors(halved / "adapter" / "adapter_model.safetensors")
    b = _safetensors(straight / "adapter" / "adapter_model.safetensors")
    assert all(bool((a[k] == b[k]).all()) for k in a)


def test_a_dead_trial_stops_early_with_the_reason(tmp_path: Path, tiny_model_dir: Path) -> None:
    # random-weight text never earns a base reward, and the candidate pays every completion the same: no group has
    # any reward spread, so GRPO gets no gradient; the trial stops after two such steps instead of six
    reward = RewardSpec(name="constant", source=CONSTANT, entrypoint="constant").to_dict()
    out = _spec(tmp_path, tiny_model_dir, [reward], steps=6, checkpoint_every=1,
                early_stop={"zero_std_steps": 2, "nan_steps": 0, "length_fraction": 0.0})
    _with_stop(out, None, early_stop=True)
    proc = _run(out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    train = json.loads((out / "train.json").read_text())
    assert train["state"] == "failed" and train["steps"] == 2
    assert train["reason"].startswith("early stop at step 2/6: reward std 0 in every GRPO group for 2 logged steps")
    assert train["early_stop"] == train["reason"]
    assert not (out / "hf").exists() and not (out / "eval_dev.json").exists()


def test_early_stop_rule_reads_the_logged_steps() -> None:
    cfg = EarlyStopConfig(zero_std_steps=3, nan_steps=2, length_fraction=0.25, length_window=2)
    alive = [{"loss": 0.1, "reward": 1.0, "reward_std": 0.5, "completions/mean_length": 100.0}] * 4
    assert dead_reason(alive, cfg) is None
    flat = [{"loss": 0.0, "reward": 1.0, "reward_std": 0.0, "completions/mean_length": 100.0}]
    assert dead_reason(alive + flat * 2, cfg) is None       # two in a row: not yet
    assert "for 3 logged steps in a row" in dead_reason(alive + flat * 3, cfg)
    assert dead_reason(alive + flat * 2 + alive[:1] + flat * 2, cfg) is None   # interrupted: the count restarts
    nan = [{"loss": float("nan"), "grad_norm": 1.0, "reward": 1.0, "reward_std": 0.5}]
    assert "non-finite loss" in dead_reason(alive + nan * 2, cfg)
    short = [{"loss": 0.1, "reward": 1.0, "reward_std": 0.5, "completions/mean_length": 20.0}] * 2
    assert "completion length collapsed 100->20 tokens" in dead_reason(alive + short, cfg)
    assert dead_reason(alive + short, EarlyStopConfig(zero_std_steps=0, nan_steps=0, length_fraction=0.0)) is None
    assert dead_reason(alive + [{"train_runtime": 1.0, "train_loss": float("nan")}], cfg) is None   # summary row


def _result(tid: str, correct: list[int], extraction: float = 1.0) -> RungResult:
    acc = sum(correct) / len(correct)
    return RungResult(trial_id=tid, item_ids=[f"i{k}" for k in range(len(correct))], correct=correct,
                      accuracy=acc, extraction_rate=extraction, flex_accuracy=acc)


SETTINGS = BootstrapSettings(n_resamples=200, confidence=0.95, seed=0)


def test_promotion_keeps_the_quota_and_drops_only_measured_differences() -> None:
    good = [_result(f"g{k}", [1] * (60 - 4 * k) + [0] * (20 + 4 * k)) for k in range(3)]   # 0.75, 0.70, 0.65
    bad = [_result(f"b{k}", [0] * (70 + k) + [1] * (10 - k)) for k in range(3)]           # 0.125, 0.11, 0.10
    near = _result("near", [1] * 50 + [0] * 30)                                               # 0.625: noise of g2
    d = promote(good + bad + [near], keep=0.4, within_noise=True, alpha=0.05, settings=SETTINGS)
    assert {t for t, (what, _) in d.items() if what == PROMOTED} == {"g0", "g1", "g2", "near"}
    assert d["g2"][1].startswith("rank 3/7") and "inside the keep quota 3" in d["g2"][1]
    assert "within noise" in d["near"][1] and "Holm" in d["near"][1]
    for t in ("b0", "b1", "b2"):
        assert d[t][0] == DROPPED and "worse by the paired test" in d[t][1]
    # without the noise rule the quota alone decides
    q = promote(good + bad + [near], keep=0.4, within_noise=False, alpha=0.05, settings=SETTINGS)
    assert {t for t, (what, _) in q.items() if what == PROMOTED} == {"g0", "g1", "g2"}
    assert "outside the keep quota 3" in q["near"][1]


def test_promotion_breaks_ties_as_the_final_ranking_does() -> None:
    same = [1] * 20 + [0] * 20
    a, b = _result("a", same, extraction=0.5), _result("b", same, extraction=0.9)
    d = promote([a, b], keep=0.5, within_noise=False, alpha=0.05, settings=SETTINGS)
    assert d["b"][0] == PROMOTED and d["a"][0] == DROPPED   # equal accuracy: the higher extraction rate ranks first
    assert promote([a], keep=0.1, within_noise=False, alpha=0.05, settings=SETTINGS)["a"][0] == PROMOTED


FILES = {
    "variety": VARIETY,
    "vowels": "def vowels(prompts, completions, **kwargs):\n"
              "    return [min(50, sum(ch in 'aeiou' for ch in c[-1]['content'])) / 10 for c in completions]\n",
    "brevity": "def brevity(prompts, completions, **kwargs):\n"
               "    return [-min(1000, len(c[-1]['content'])) / 100 for c in completions]\n",
    # varies on the probe suite (which holds tagged answers) but never on a random-weight model's text: the
    # pre-screen, not the probe, is what can tell that GRPO would get nothing from it here
    "tags": "def tags(prompts, completions, **kwargs):\n"
            "    return [1.0 if '<solution>' in c[-1]['content'] else 0.0 for c in completions]\n",
}


@pytest.mark.slow
def test_a_tiny_rung_search_end_to_end(tmp_path: Path, tiny_model_dir: Path) -> None:
    from test_e2e import _cli, _overrides, _status

    rewards = tmp_path / "rewards"
    rewards.mkdir()
    for name, src in FILES.items():
        (rewards / f"{name}.py").write_text(src)
    run_dir = tmp_path / "run"
    # the paper's tags: the `tags` reward then passes the probes (written in that format) and only the
    # pre-screen, on the random model's tag-free text, can see that it gives no signal
    proc = _cli("run", "--preset", "smoke", "--out", str(run_dir), *_overrides(tiny_model_dir),
                "task.answer_format=tags", "search.rounds=1", "search.candidates_per_round=4", "search.refills=0", "proposer.name=files",
                f"proposer.path={rewards}", "screen.steps=4", "screen.rungs=[2,4]", "screen.keep=0.5",
                "screen.keep_within_noise=false", "screen.rung_dev_size=4", "prescreen.enabled=true",
                "prescreen.prompts=4", "prescreen.samples=4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    st = _status(run_dir)
    rows = {r["name"]: r for r in st["candidates"]}
    assert rows["tags"]["state"] == "rejected" and rows["tags"]["reason"].startswith("prescreen: no within-group")
    trained = [rows[n] for n in ("variety", "vowels", "brevity")]
    # three trials at rung 1 (2 steps), ceil(0.5 * 3) = 2 promoted to the final rung, the third dropped
    finished = [r for r in trained if r["state"] == "evaluated"]
    dropped = [r for r in trained if r["state"] == "dropped"]
    assert len(finished) == 2 and len(dropped) == 1, [(r["name"], r["state"], r["reason"]) for r in trained]
    for r in finished:
        assert r["steps"] == 4 and r["rung"] == 2 and r["rungs_total"] == 2 and r["dev"]["n"] == 8
        assert [x["decision"] for x in r["rungs"]] == ["promoted", "final"] and r["rungs"][0]["n"] == 4
        assert r["stopped"] == "trained the full budget (4 steps)"
    d = dropped[0]
    assert d["steps"] == 2 and d["rung"] == 1 and d["dev"] is None
    assert d["reason"].startswith("dropped at rung 1/2 (2 steps, 4 dev items): rank 3/3")
    assert d["stopped"].startswith("dropped at rung 1/2 (2 steps)")
    assert rows["base rewards only"]["steps"] == 4   # the baseline always trains the full budget

    store = Store.in_dir(run_dir)
    for r in trained:
        t = store.trial(trial_id_for(r["id"], 0))
        assert not (Path(t.dir) / "hf").exists(), "a finished or dropped trial keeps no checkpoint"
        assert t.state == {"evaluated": "done", "dropped": "dropped"}[r["state"]]
        states = t.metrics["training_states"]
        if r["state"] == "evaluated":   # one job per rung; the promotion started where the rung stopped
            assert [s["steps"] for s in states] == [2, 4] and states[1]["resumed_from_step"] == 2
            assert states[1]["start"] == states[0]["stop"]
    assert store.get_meta("prescreen_pool")["groups"] == 4
    # the proposer's feedback names the dropped candidate and why
    fb = store.feedback(1)
    assert any(f["name"] == d["name"] and f["state"] == "dropped" and f["rung"] == 1 for f in fb["failures"])

    rep = _cli("report", str(run_dir))
    assert rep.returncode == 0, rep.stderr[-2000:]
    md = (run_dir / "report" / "report.md").read_text()
    assert "## Successive halving and pre-screen" in md and f"| `{d['name']}` | dropped | 2 | 1/2 |" in md
    assert "`tags`: prescreen: no within-group variance" not in md   # the reason is the check's, without its stage
    assert "- `tags`: no within-group variance" in md
    results = json.loads((run_dir / "report" / "results.json").read_text())
    sc = results["cost"]["screening"]
    assert sc["steps_trained"] == 2 * 4 + 2 and sc["steps_full_budget"] == 3 * 4
    assert len(sc["prescreen"]["rejected"]) == 1 and sc["prescreen"]["est_saved_s"] > 0
