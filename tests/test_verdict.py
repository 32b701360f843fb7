"""The verdict rule (`report.results.decide` over `search.finals.rank_arms`): its rules, and its false-positive rate
and power simulated with seed noise (no GPU: per-item 0/1 vectors drawn from a model with a checkpoint effect).

    python -m pytest tests/test_verdict.py -q            # fast simulations (1000-2000 replicates)
    python -m pytest tests/test_verdict.py -q -m slow    # 4000 replicates, tighter Monte Carlo error

Simulated model: item difficulty p_i ~ U(0.2, 0.8); each trained checkpoint (arm, seed) shifts every item by
u ~ N(0, seed_sd) (the same checkpoint on dev and on test: a lucky seed is lucky on both splits, which is how
ranking on dev leaks into the test comparison); correctness ~ Bernoulli(clip(p_i + effect + u)).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from rewardsearch.evaluate.stats import SEED_ITEM, BootstrapSettings, compare, correct_family
from rewardsearch.report.results import _comparison_dict, decide
from rewardsearch.search.finals import rank_arms
from rewardsearch.store import ArmRecord

S = BootstrapSettings(n_resamples=200, confidence=0.95, seed=0)
ALPHA = 0.05


def _simulate(rng: np.random.Generator, effects: list[float], seeds: int, seed_sd: float, n_dev: int,
              n_test: int) -> dict[str, Any] | None:
    """One final stage of len(effects) arms through the real ranking, comparisons, Holm and verdict."""
    p = {"dev": rng.uniform(0.2, 0.8, n_dev), "test": rng.uniform(0.2, 0.8, n_test)}
    ids = {sp: [str(i) for i in range(len(v))] for sp, v in p.items()}
    arms, vectors, scores = [], {}, {}
    for k, eff in enumerate(effects):
        arm = ArmRecord(id=f"arm{k}", label=f"arm{k}", kind="ensemble", strategy="top-k", members=["x"] * (k + 2))
        u = rng.normal(0.0, seed_sd, size=(seeds, 1))
        for sp in ("dev", "test"):
            m = (rng.random((seeds, p[sp].size)) < np.clip(p[sp][None, :] + eff + u, 0, 1)).astype(int)
            vectors[(arm.id, sp)] = [(f"{arm.id}-{sp}-s{s}", ids[sp], m[s].tolist()) for s in range(seeds)]
        scores[arm.id] = float(np.mean([v for _, _, v in vectors[(arm.id, "dev")]]))
        arms.append(arm)
    comps = [compare(a.id, b.id, "test", "test-final", vectors[(a.id, "test")], vectors[(b.id, "test")], S,
                     seeds=list(range(seeds))) for i, a in enumerate(arms) for b in arms[i + 1:]]
    correct_family(comps)
    rows = [{"id": a.id, "label": a.label, "kind": a.kind} for a, _ in rank_arms(arms, scores)]
    return decide(rows, [_comparison_dict(c, {}) for c in comps], "dev", ALPHA, final_done=True)


def _rates(effects: list[float], reps: int, seed_sd: float, seeds: int = 3, n_dev: int = 200, n_test: int = 500,
           arm: str | None = None, seed: int = 0) -> tuple[dict[str, float], float]:
    """(share of replicates per verdict (a "winner" counted only if it names `arm`, when given), the Monte Carlo
    standard error of a share near alpha)."""
    rng = np.random.default_rng(seed)
    hits: dict[str, int] = {}
    for _ in range(reps):
        w = _simulate(rng, effects, seeds, seed_sd, n_dev, n_test)
        v = w["verdict"] if w else "none"
        if v == "winner" and arm is not None and w and w["arm"] != arm:
            v = "wrong winner"
        hits[v] = hits.get(v, 0) + 1
    return {k: c / reps for k, c in hits.items()}, math.sqrt(ALPHA * (1 - ALPHA) / reps)


@pytest.mark.parametrize("seed_sd", [0.02, 0.035])
def test_equal_arms_with_seed_noise_rarely_produce_a_winner(seed_sd: float) -> None:
    # two equal arms: the family is one comparison, so this is the test's own size (either direction counts)
    r, se = _rates([0.0, 0.0], reps=1200, seed_sd=seed_sd)
    assert r.get("winner", 0) + r.get("reversed", 0) <= ALPHA + 2 * se, (r, se)


def test_equal_arms_ranked_on_dev_do_not_leak_a_winner_into_test() -> None:
    # four equal arms, the top two by dev compared on test: the dev ranking shares seed effects with test, and
    # Holm over the whole family is what keeps the rate below alpha
    r, se = _rates([0.0] * 4, reps=500, seed_sd=0.035, n_test=300)
    assert r.get("winner", 0) <= ALPHA + 2 * se, (r, se)


def test_a_real_difference_is_found() -> None:
    r, _ = _rates([0.08, 0.0], reps=500, seed_sd=0.02, arm="arm0")
    assert r.get("winner", 0) >= 0.45 and r.get("wrong winner", 0) == 0, r  # measured ~0.6 (docs/proof.md)


@pytest.mark.slow
@pytest.mark.parametrize("seed_sd", [0.0, 0.02, 0.035])
def test_size_with_many_replicates(seed_sd: float) -> None:
    r, se = _rates([0.0, 0.0], reps=4000, seed_sd=seed_sd, seed=1)
    assert r.get("winner", 0) + r.get("reversed", 0) <= ALPHA + 2 * se, (r, se)


# -- the rules, on hand-made rows and comparisons --------------------------------------------------------------

def _row(aid: str, kind: str = "ensemble") -> dict[str, Any]:
    return {"id": aid, "label": aid, "kind": kind}


def _cmp(a: str, b: str, diff: float, p_holm: float, test: str = SEED_ITEM) -> dict[str, Any]:
    return {"a": a, "b": b, "a_label": a, "b_label": b, "n01": 3, "n10": 5, "a_trials": [], "b_trials": [],
            "diff": diff, "per_seed_diff": [diff, diff], "ci": [diff - 0.01, diff + 0.01], "test": test,
            "p_holm": p_holm}


def test_significant_in_the_runner_ups_favour_is_reversed_not_tied() -> None:
    w = decide([_row("A"), _row("B")], [_cmp("A", "B", -0.05, 0.001)], "dev", ALPHA, True)
    assert w["verdict"] == "reversed" and "B is significantly better" in w["message"]
    w = decide([_row("A"), _row("B")], [_cmp("B", "A", 0.05, 0.001)], "dev", ALPHA, True)  # stored the other way
    assert w["verdict"] == "reversed" and w["comparison"]["diff"] == -0.05
    assert decide([_row("A"), _row("B")], [_cmp("A", "B", 0.05, 0.2)], "dev", ALPHA, True)["verdict"] == "tied"
    assert decide([_row("A"), _row("B")], [_cmp("A", "B", 0.05, 0.01)], "dev", ALPHA, True)["verdict"] == "winner"


def test_an_unfinished_final_stage_names_no_winner() -> None:
    w = decide([_row("A"), _row("B")], [_cmp("A", "B", 0.3, 1e-9)], "dev", ALPHA, final_done=False)
    assert w["verdict"] == "incomplete" and w["runner_up"] is None


def test_one_seed_per_arm_is_not_a_winner() -> None:
    w = decide([_row("A"), _row("B")], [_cmp("A", "B", 0.3, 1e-9, test="exact McNemar (one checkpoint)")], "dev",
               ALPHA, True)
    assert w["verdict"] == "unreplicated" and "two checkpoints" in w["message"]


def test_a_random_draw_identical_to_an_ensemble_is_not_ranked_as_the_best_control() -> None:
    ens = ArmRecord(id="top-3", label="top-3", kind="ensemble", strategy="top-k", members=["a", "b", "c"])
    dup = ArmRecord(id="random-3", label="random-3", kind="control", strategy="random-k", members=["c", "a", "b"],
                    meta={"same_set_as": "top-3"})
    other = ArmRecord(id="random-3-d2", label="random-3-d2", kind="control", strategy="random-k",
                      members=["d", "e", "f"])
    order = [a.id for a, _ in rank_arms([ens, dup, other], {"top-3": 0.5, "random-3": 0.5, "random-3-d2": 0.5})]
    assert order == ["top-3", "random-3-d2"]  # the duplicate is not ranked; on equal scores the ensemble leads
    assert rank_arms([ens], {"top-3": None}) == []
