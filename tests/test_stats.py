"""Statistics: bootstrap CIs, paired McNemar on seed-averaged items, Bonferroni/Holm; checked against scipy directly.

    python -m pytest tests/test_stats.py -q
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from rewardsearch.evaluate.stats import (
    BootstrapSettings,
    align,
    bootstrap_ci,
    compare,
    correct_family,
    corrected,
    mcnemar_counts,
    mcnemar_pvalues,
    seed_summary,
)

S = BootstrapSettings(n_resamples=1000, confidence=0.95, seed=3)


def test_bootstrap_matches_scipy_with_the_stated_recipe() -> None:
    x = (np.random.default_rng(0).random(200) < 0.3).astype(float)
    got = bootstrap_ci(x, S)
    for key, method in (("percentile", "percentile"), ("bca", "BCa")):
        ref = stats.bootstrap((x,), np.mean, n_resamples=1000, method=method, vectorized=True,
                              rng=np.random.default_rng(3)).confidence_interval
        assert got[key] == pytest.approx([ref.low, ref.high], abs=1e-12)
    assert got["bca"][0] < x.mean() < got["bca"][1]


def test_bootstrap_of_constant_data_is_a_point_not_nan() -> None:
    assert bootstrap_ci([0, 0, 0, 0], S) == {"percentile": [0.0, 0.0], "bca": [0.0, 0.0]}
    assert bootstrap_ci([], S) == {"percentile": None, "bca": None}


@pytest.mark.parametrize(("n01", "n10"), [(3, 7), (0, 5), (12, 12), (40, 21)])
def test_mcnemar_exact_is_the_binomial_test_and_chi2_has_continuity_correction(n01: int, n10: int) -> None:
    exact, chi2 = mcnemar_pvalues(n01, n10)
    assert exact == pytest.approx(stats.binomtest(n10, n01 + n10, 0.5).pvalue, abs=1e-12)
    assert chi2 == pytest.approx(stats.chi2.sf((abs(n01 - n10) - 1) ** 2 / (n01 + n10), 1), abs=1e-12)


def test_no_discordant_items_means_no_evidence() -> None:
    assert mcnemar_pvalues(0, 0) == (1.0, 1.0)  # statsmodels' chi-square would divide by zero


def test_holm_and_bonferroni_by_hand() -> None:
    p = [0.01, 0.04, 0.03, 0.20]
    bonf, holm = corrected(p)
    assert bonf == pytest.approx([0.04, 0.16, 0.12, 0.8])
    # sorted 0.01, 0.03, 0.04, 0.20 -> 4*0.01, max(.., 3*0.03), max(.., 2*0.04), max(.., 0.20)
    assert holm == pytest.approx([0.04, 0.09, 0.09, 0.20])


def test_align_uses_item_ids_not_positions_and_averages_seeds() -> None:
    ids, a, b = align([(["x", "y", "z"], [1, 0, 1]), (["z", "x", "y"], [0, 1, 1])], [(["y", "x"], [1, 0])])
    assert ids == ["x", "y"]  # only the items every vector holds, in the first vector's order
    assert a.tolist() == [1.0, 0.5] and b.tolist() == [0.0, 1.0]


def test_counts_follow_the_contract_n01_is_a_wrong_b_right() -> None:
    assert mcnemar_counts(np.array([0, 0, 1, 1.0]), np.array([1, 0, 0, 1.0])) == (1, 1)
    c = compare("A", "B", "test", "f", [("ta", ["1", "2", "3"], [0, 0, 1])], [("tb", ["1", "2", "3"], [1, 1, 1])], S)
    assert (c.n01, c.n10, c.n) == (2, 0, 3) and c.diff == pytest.approx(-2 / 3)
    assert c.a_trials == ["ta"] and c.b_trials == ["tb"]


def test_family_correction_fills_every_comparison() -> None:
    rng = np.random.default_rng(1)
    ids = [str(i) for i in range(60)]
    sides = [(f"t{k}", ids, (rng.random(60) < p).astype(int).tolist()) for k, p in enumerate((0.2, 0.5, 0.8))]
    comps = [compare(a[0], b[0], "dev", "f", [a], [b], S) for i, a in enumerate(sides) for b in sides[i + 1:]]
    correct_family(comps)
    assert all(c.p_holm >= c.p_exact and c.p_bonferroni >= c.p_holm for c in comps)
    assert min(c.p_holm for c in comps) < 0.05  # 0.2 vs 0.8 on 60 items is not a close call


def test_seed_summary() -> None:
    s = seed_summary([0.5, 0.6, 0.7])
    assert s["mean"] == pytest.approx(0.6) and s["sd"] == pytest.approx(0.1) and (s["min"], s["max"]) == (0.5, 0.7)
    assert seed_summary([0.4])["sd"] is None
