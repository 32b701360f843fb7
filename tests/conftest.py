"""Shared fixtures: a tiny real causal LM (random weights, the embedded model's real tokenizer) built once.

The tiny model makes a GRPO step take about a second on two CPU cores, so end-to-end tests exercise the real
TRL + PEFT + generation path without the 135M model's minutes; tests marked `slow` use the embedded model.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

# Optional dependencies the tests need, by import name, with the extra that installs each. A missing one skips
# its tests locally; CI sets RS_REQUIRE_EXTRAS=1 (`.ci/run`), where a missing one stops the run instead, so a
# broken install cannot pass as a green run of skips.
EXTRAS = {"math_verify": "math", "ray": "ray", "llama_cpp": "llamacpp"}


def sigint_default() -> None:
    """`preexec_fn` for a child a test interrupts with SIGINT: a job started in the background by a
    non-interactive shell (`pytest ... &`) inherits SIGINT ignored, and Python keeps an ignored SIGINT ignored,
    so the child would never see the Ctrl-C the test sends."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def requires(module: str) -> pytest.MarkDecorator:
    """Skip marker for a test that needs the optional `module` (one of `EXTRAS`)."""
    return pytest.mark.skipif(
        importlib.util.find_spec(module) is None,
        reason=f"{module} not installed (optional extra: pip install -e '.[{EXTRAS[module]}]')",
    )


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("RS_REQUIRE_EXTRAS") == "1":
        missing = [m for m in EXTRAS if importlib.util.find_spec(m) is None]
        if missing:
            extras = ",".join(EXTRAS[m] for m in missing)
            raise pytest.UsageError(
                f"RS_REQUIRE_EXTRAS=1 but {', '.join(missing)} is not installed: pip install -e '.[test,{extras}]'"
            )


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
    from rewardsearch.models import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny-model"), embedded_model_dir)


# -- a synthetic finished run (no training): store rows with known vectors, for report/statistics/export tests ----

# Known-safe, hand-written rewards (not generated code): tests may import their exports in-process.
SAFE_REWARDS = {
    "variety": '''
def variety(prompts, completions, answer, **kwargs):
    """Distinct characters / 10."""
    return [len(set(c[-1]["content"])) / 10 for c in completions]
''',
    "has_digit": '''
import re

_DIGIT = re.compile(r"[0-9]")


def _text(c):
    return c[-1]["content"] if isinstance(c, list) else str(c)


def has_digit(prompts, completions, answer, **kwargs):
    """1 when the completion holds a digit; None when the gold answer holds none."""
    return [None if not _DIGIT.search(str(a)) else (1.0 if _DIGIT.search(_text(c)) else 0.0)
            for c, a in zip(completions, answer)]
''',
    "length_penalty": '''
def _text(c):
    return c[-1]["content"] if isinstance(c, list) else str(c)


def length_penalty(prompts, completions, answer, **kwargs):
    """Minus the length in hundreds of characters: a different scale from the others."""
    return [-len(_text(c)) / 100.0 for c in completions]
''',
}


def make_synthetic_run(run_dir: Path, n_dev: int = 40, n_test: int = 50, seeds: int = 3) -> Path:
    """A finished search (6 candidates, 2 rounds) plus a final stage (single, ensembles, controls), every trial
    with seeded random per-item vectors; the `top-3` ensemble is far better than the rest on test. Final arms use the
    fresh seeds of `arm_seeds` (1..seeds), as the real final stage does."""
    import numpy as np

    from rewardsearch.config import Config
    from rewardsearch.evaluate.metrics import wilson_ci
    from rewardsearch.rewards.spec import RewardSpec
    from rewardsearch.search.finals import arm_seeds, arm_trial_id
    from rewardsearch.search.ranking import trial_id_for
    from rewardsearch.store import ArmRecord, EvalRecord, Store, TrialRecord
    from rewardsearch.tasks import load_task

    cfg = Config.model_validate({
        "task": {"arith": {"train_size": 16, "dev_size": n_dev, "test_size": n_test}},
        "eval": {"dev_size": n_dev, "test_size": n_test},
        "ensemble": {"seeds": seeds, "ks": [2, 3]},
        "stats": {"bootstrap_resamples": 500},
    })
    task = load_task(cfg.task, cfg.seed)
    ids = {s: [p.id for p in task.split(s)] for s in ("dev", "test")}
    rng = np.random.default_rng(7)
    store = Store.in_dir(run_dir)
    store.set_meta("config", cfg.model_dump(mode="json"))
    store.set_meta("config_hash", cfg.hash())
    store.set_meta("status", "done")
    store.set_meta("rounds_done", 2)
    store.set_meta("argv", ["run", "--synthetic"])

    def add_trial(tid: str, kind: str, rnd: int, seed: int, rewards: list[str], cid: str | None,
                  p: dict[str, float]) -> None:
        curves = [{"step": s, "rewards/answer_reward/mean": 0.1 * s, "rewards/exact_format_reward/mean": 0.0,
                   "reward": 0.2 * s, "frac_reward_zero_std": 0.5} for s in range(1, 6)]
        store.upsert_trial(TrialRecord(id=tid, kind=kind, round=rnd, seed=seed, rewards=rewards, candidate_id=cid,
                                       state="done", wall_s=10.0, curves=curves,
                                       metrics={"device": "cpu", "steps": 5, "job_wall_s": 12.0}))
        for split, prob in p.items():
            correct = [int(x) for x in rng.random(len(ids[split])) < prob]
            n = len(correct)
            acc = sum(correct) / n
            store.add_eval(EvalRecord(trial_id=tid, split=split, item_ids=ids[split], correct=correct,
                                      flex_correct=correct, extracted=[1] * n, accuracy=acc, flex_accuracy=acc,
                                      extraction_rate=1.0, f1=2 * acc / (1 + acc), ci95=wilson_ci(sum(correct), n)))

    specs = []
    for i in range(6):
        name = list(SAFE_REWARDS)[i % 3]
        src = SAFE_REWARDS[name] + f"\n# variant {i}\n_VARIANT = {i}\n"
        specs.append(RewardSpec(name=f"{name}_{i}", source=src, entrypoint=name, origin="evolve", round=1 + i // 3))
    store.add_candidates(specs, state="evaluated")
    for s in specs:
        store.add_check(s.id, "static", True, None, [], {})
        store.add_check(s.id, "probe", True, None, ["constant_on_probe"] if s.name.startswith("len") else [], {})
    add_trial(trial_id_for(None, 0), "baseline", 0, 0, [], None, {"dev": 0.2})
    dev_p = [0.55, 0.5, 0.45, 0.35, 0.3, 0.25]
    for s, p in zip(specs, dev_p, strict=True):
        add_trial(trial_id_for(s.id, 0), "candidate", s.round, 0, [s.id], s.id, {"dev": p})
    arms = [
        (ArmRecord(id=f"single-{specs[0].id}", label=specs[0].name, kind="single", strategy="retrain",
                   members=[specs[0].id], specs=[specs[0].to_dict()], normalize="zscore"), 0.45),
        (ArmRecord(id="top-2", label="top-2", kind="ensemble", strategy="top-k", members=[s.id for s in specs[:2]],
                   specs=[s.to_dict() for s in specs[:2]], normalize="zscore"), 0.5),
        (ArmRecord(id="top-3", label="top-3", kind="ensemble", strategy="top-k", members=[s.id for s in specs[:3]],
                   specs=[s.to_dict() for s in specs[:3]], normalize="zscore", aliases=["greedy-cover"]), 0.9),
        (ArmRecord(id="base", label="base rewards only", kind="control", strategy="base", normalize="zscore"), 0.2),
        (ArmRecord(id="random-3", label="random-3", kind="control", strategy="random-k",
                   members=[specs[i].id for i in (1, 4, 5)], specs=[specs[i].to_dict() for i in (1, 4, 5)],
                   normalize="zscore", meta={"policy": "best", "matched_ensemble": "top-3"}), 0.25),
    ]
    for arm, p in arms:
        store.upsert_arm(arm)
        for seed in arm_seeds(cfg):
            tid = arm_trial_id(arm, seed)
            kind = {"single": "candidate", "ensemble": "ensemble"}.get(arm.kind, "control")
            add_trial(tid, "baseline" if arm.strategy == "base" else kind, 3, seed, arm.members,
                      arm.members[0] if arm.kind == "single" else None, {"dev": p, "test": p})
            t = store.trial(tid)
            if arm.normalize == "zscore":
                t.metrics["reward_norm"] = {s["entrypoint"]: {"group_std": 0.5 + 0.1 * k, "raw_mean": 0.1}
                                            for k, s in enumerate(arm.specs)}
                store.upsert_trial(t)
    store.set_meta("final_status", "done")
    store.close()
    return run_dir


@pytest.fixture
def synthetic_run(tmp_path: Path) -> Path:
    return make_synthetic_run(tmp_path / "run")
