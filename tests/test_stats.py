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
    seed_item_test,
    seed_summary,
    wilson_interval,
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


def test_constant_proportions_get_a_wilson_interval_and_constant_differences_a_point() -> None:
    from statsmodels.stats.proportion import proportion_confint

    zeros = bootstrap_ci([0] * 500, S)  # an all-zero arm: the bootstrap has no spread, the truth may be > 0
    assert zeros["bca"] == zeros["percentile"] == pytest.approx([0.0, 0.00762], abs=1e-5)
    ones = bootstrap_ci([1.0] * 40, BootstrapSettings(confidence=0.9))
    assert ones["bca"] == pytest.approx(list(proportion_confint(40, 40, alpha=0.1, method="wilson")), abs=1e-12)
    assert bootstrap_ci([0.0] * 4, S, proportion=False) == {"percentile": [0.0, 0.0], "bca": [0.0, 0.0]}
    assert bootstrap_ci([], S) == {"percentile": None, "bca": None}


def test_wilson_follows_the_configured_confidence() -> None:
    from statsmodels.stats.proportion import proportion_confint

    for conf in (0.8, 0.9, 0.99):
        assert wilson_interval(7, 50, conf) == pytest.approx(
            list(proportion_confint(7, 50, alpha=1 - conf, method="wilson")), abs=1e-12)
    assert wilson_interval(7, 50, 0.9)[1] < wilson_interval(7, 50, 0.95)[1]


def test_chi2_with_equal_discordant_counts_is_one_like_r() -> None:
    # R: mcnemar.test(matrix(c(5, 1, 1, 5), 2)) -> X-squared = 0, p-value = 1 (no correction when b == c)
    assert mcnemar_pvalues(1, 1)[1] == 1.0 and mcnemar_pvalues(4, 4)[1] == 1.0
    from statsmodels.stats.contingency_tables import mcnemar

    for n01, n10 in ((1, 2), (3, 9), (0, 1)):
        ref = mcnemar([[0, n01], [n10, 0]], exact=False, correction=True).pvalue
        assert mcnemar_pvalues(n01, n10)[1] == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize(("n01", "n10"), [(3, 7), (0, 5), (12, 12), (40, 21)])
def test_mcnemar_exact_is_the_binomial_test_and_chi2_has_continuity_correction(n01: int, n10: int) -> None:
    exact, chi2 = mcnemar_pvalues(n01, n10)
    assert exact == pytest.approx(stats.binomtest(n10, n01 + n10, 0.5).pvalue, abs=1e-12)
    assert chi2 == pytest.approx(stats.chi2.sf(max(0, abs(n01 - n10) - 1) ** 2 / (n01 + n10), 1), abs=1e-12)


def test_no_discordant_items_means_no_evidence() -> None:
    assert mcnemar_pvalues(0, 0) == (1.0, 1.0)  # statsmodels' chi-square would divide by zero


def test_holm_and_bonferroni_by_hand() -> None:
    p = [0.01, 0.04, 0.03, 0.20]
    bonf, holm = corrected(p)
    assert bonf == pytest.approx([0.04, 0.16, 0.12, 0.8])
    # sorted 0.01, 0.03, 0.04, 0.20 -> 4*0.01, max(.., 3*0.03), max(.., 2*0.04), max(.., 0.20)
    assert holm == pytest.approx([0.04, 0.09, 0.09, 0.20])
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(5)
    for m in (1, 2, 7, 30):
        q = rng.random(m) ** 3
        assert corrected(list(q))[1] == pytest.approx(list(multipletests(q, method="holm")[1]), abs=1e-12)


def test_align_uses_item_ids_not_positions_and_averages_seeds() -> None:
    ids, a, b = align([(["x", "y", "z"], [1, 0, 1]), (["z", "x", "y"], [0, 1, 1])], [(["y", "x"], [1, 0])])
    assert ids == ["x", "y"]  # only the items every vector holds, in the first vector's order
    assert a.tolist() == [1.0, 0.5] and b.tolist() == [0.0, 1.0]


def test_counts_follow_the_contract_n01_is_a_wrong_b_right() -> None:
    assert mcnemar_counts(np.array([0, 0, 1, 1.0]), np.array([1, 0, 0, 1.0])) == (1, 1)
    c = compare("A", "B", "test", "f", [("ta", ["1", "2", "3"], [0, 0, 1])], [("tb", ["1", "2", "3"], [1, 1, 1])], S)
    assert (c.n01, c.n10, c.n) == (2, 0, 3) and c.diff == pytest.approx(-2 / 3)
    assert c.a_trials == ["ta"] and c.b_trials == ["tb"]
    assert c.test.startswith("exact McNemar") and c.p == c.p_exact  # one seed a side: a claim about checkpoints


def test_seed_item_test_is_welch_on_per_seed_accuracies_when_items_add_nothing() -> None:
    # column sums equal within each arm: every item has the same per-item difference (1/3), so the item part is 0
    a = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 1, 1]])
    b = np.array([[1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]])
    t = seed_item_test(a, b, 0.95)
    ref = stats.ttest_ind(a.mean(axis=1), b.mean(axis=1), equal_var=False)
    assert t is not None and t.var_items == 0.0
    assert t.diff == pytest.approx(1 / 3) and t.p == pytest.approx(ref.pvalue, abs=1e-12)
    assert t.df == pytest.approx(ref.df, abs=1e-9)
    half = stats.t.ppf(0.975, ref.df) * t.se
    assert t.ci == pytest.approx([1 / 3 - half, 1 / 3 + half])
    assert seed_item_test(a[:1], b, 0.95) is None  # one seed: seed noise cannot be estimated


def test_seed_item_test_rejects_mismatched_shapes_with_one_line() -> None:
    with pytest.raises(ValueError, match="same items"):
        seed_item_test(np.zeros((2, 3)), np.zeros((2, 4)), 0.95)


def test_with_several_seeds_the_tested_p_and_direction_come_from_the_mean_difference() -> None:
    # issue 13, point 1: A better on 30 items (+1), worse on 80 (-1/3), 10 equal; 3 seeds each
    n, seeds = 120, 3
    a = np.zeros((seeds, n))
    b = np.zeros((seeds, n))
    a[:, :30] = 1                     # A right on every seed, B never
    b[:, 30:110] = 1                  # B right on every seed ...
    a[:, 30:110] = 1
    for k in range(80):               # ... A wrong on one seed of three (rotating, so seeds stay alike)
        a[k % seeds, 30 + k] = 0
    ids = [str(i) for i in range(n)]
    side = lambda m, t: [(f"{t}{s}", ids, m[s].tolist()) for s in range(seeds)]  # noqa: E731
    c = compare("A", "B", "test", "f", side(a, "a"), side(b, "b"), S, seeds=[1, 2, 3])
    assert (c.n01, c.n10) == (80, 30) and c.p_exact < 1e-5      # the sign count favours B ...
    assert c.diff == pytest.approx((30 - 80 / 3) / n) and c.diff > 0  # ... the mean favours A
    assert c.test.startswith("seeds+items") and c.p > 0.3 and c.ci[0] < 0 < c.ci[1]
    assert c.per_seed_diff == pytest.approx([float(a[s].mean() - b[s].mean()) for s in range(seeds)])


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
