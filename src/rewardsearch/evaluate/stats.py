"""Statistics over stored per-item correctness vectors: intervals, paired tests, multiple-comparison corrections.

Everything here takes plain vectors (one 0/1 value per item, per training seed) so that a reader can recompute
every number in `results.json` from the vectors stored beside it (`scripts/verify_results.py` does, with its own
code). The recipes:

- **Wilson interval** of an accuracy at `stats.confidence` (`wilson_interval`): the score interval, which does not
  collapse at 0 or 1.
- **Bootstrap CI** of a mean: `scipy.stats.bootstrap` on the one vector, `n_resamples`, `confidence_level`,
  `rng=numpy.random.default_rng(seed)` freshly made for each call, once with `method="percentile"` and once with
  `method="BCa"`. When every value is equal the bootstrap has no spread to show: for values that are proportions
  (accuracies, per-item seed means in [0, 1]) both intervals are the Wilson interval of that value on the n items
  (so an all-zero arm on 500 items reads [0, 0.0077], not [0, 0]); for differences, `[v, v]`. A non-finite
  interval that scipy returns otherwise is reported as `null`.
- **Paired comparison** of two arms on the same items and matched training seeds (`compare`):
  - two or more seeds a side: `seed_item_test`, a t test of the grand-mean difference whose variance has a seed
    part (spread of per-seed accuracies) and an item part (between-item variance of the per-item difference, net
    of the checkpoint noise the seed part already holds), Satterthwaite degrees of freedom; the interval is the
    matching t interval, and the per-seed differences are kept beside it. Why this and not a two-level bootstrap
    or a permutation of seed labels: docs/proof.md (both were measured).
  - one seed a side: exact McNemar (a claim about these two checkpoints only), BCa interval of the per-item
    differences.
  - always, descriptively: `n01` (items where `a`'s seed mean is below `b`'s), `n10`, the exact McNemar p (the
    binomial test of n10 among n01+n10; with several seeds a sign test that ignores sizes) and the chi-square with
    continuity correction max(0, |n01-n10|-1)^2/(n01+n10) on 1 df (as R's mcnemar.test: n01 = n10 gives p = 1).
    No discordant items: both p are 1.
- **Corrections** over a family of comparisons: Bonferroni (min(1, m*p)) and Holm's step-down adjusted p-values
  (step-down, as `statsmodels.stats.multitest.multipletests(method="holm")`), applied to each comparison's
  tested `p`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BootstrapSettings:
    n_resamples: int = 2000
    confidence: float = 0.95
    seed: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "n_resamples": self.n_resamples,
            "confidence_level": self.confidence,
            "seed": self.seed,
            "rng": "numpy.random.default_rng(seed), made fresh for every interval",
            "methods": ["percentile", "BCa"],
            "function": "scipy.stats.bootstrap((values,), numpy.mean, vectorized=True)",
            "degenerate_rule": "all values equal to v: proportions -> Wilson interval of v on the n items "
                               "(confidence_level) for both methods, differences -> [v, v]; other non-finite "
                               "bounds -> null",
        }


def _finite_pair(lo: float, hi: float) -> list[float] | None:
    return [float(lo), float(hi)] if math.isfinite(lo) and math.isfinite(hi) else None


def wilson_interval(successes: float, n: int, confidence: float) -> list[float]:
    """Wilson score interval of successes/n at `confidence` (statsmodels; n = 0 gives [0, 1])."""
    if n <= 0:
        return [0.0, 1.0]
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(successes, n, alpha=1 - confidence, method="wilson")
    return [float(lo), float(hi)]


def bootstrap_ci(values: Sequence[float], settings: BootstrapSettings,
                 proportion: bool = True) -> dict[str, list[float] | None]:
    """Percentile and BCa bootstrap CIs of the mean of `values` (see the module docstring for the recipe);
    `proportion=False` for differences, whose degenerate interval is the point itself."""
    from scipy.stats import bootstrap

    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return {"percentile": None, "bca": None}
    if np.all(x == x[0]):
        v = float(x[0])
        if proportion and 0.0 <= v <= 1.0:
            w = wilson_interval(v * x.size, int(x.size), settings.confidence)
            return {"percentile": w, "bca": list(w)}
        return {"percentile": [v, v], "bca": [v, v]}
    out: dict[str, list[float] | None] = {}
    for key, method in (("percentile", "percentile"), ("bca", "BCa")):
        with warnings.catch_warnings():
            # BCa on near-degenerate data warns and yields NaN; we report that as null, per the recipe.
            warnings.simplefilter("ignore")
            res = bootstrap(
                (x,), np.mean, n_resamples=settings.n_resamples, confidence_level=settings.confidence,
                method=method, vectorized=True, rng=np.random.default_rng(settings.seed),
            )
        out[key] = _finite_pair(res.confidence_interval.low, res.confidence_interval.high)
    return out


def align(
    a: Sequence[tuple[Sequence[str], Sequence[float]]], b: Sequence[tuple[Sequence[str], Sequence[float]]] = ()
) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """Per-item means over seeds, on the items every vector of `a` (and `b`) holds, in the first vector's order.

    Each side is a list of `(item_ids, correct)` pairs, one per seed. Returns (item_ids, a_means, b_means).
    """
    vectors = list(a) + list(b)
    if not vectors:
        return [], np.zeros(0), None
    common = set(vectors[0][0])
    for ids, _ in vectors[1:]:
        common &= set(ids)
    order = [i for i in vectors[0][0] if i in common]

    def side(vs: Sequence[tuple[Sequence[str], Sequence[float]]]) -> np.ndarray:
        rows = []
        for ids, values in vs:
            pos = {item: k for k, item in enumerate(ids)}
            rows.append([float(values[pos[i]]) for i in order])
        return np.mean(np.asarray(rows, dtype=float), axis=0) if rows else np.zeros(len(order))

    return order, side(a), (side(b) if b else None)


def mcnemar_counts(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(n01, n10): items where `a` is below `b`, and above it."""
    return int(np.sum(a < b)), int(np.sum(a > b))


def mcnemar_pvalues(n01: int, n10: int) -> tuple[float, float]:
    """(exact, chi-square with continuity correction) two-sided p-values from the discordant counts."""
    if n01 + n10 == 0:
        return 1.0, 1.0
    from scipy.stats import chi2 as chi2_dist
    from statsmodels.stats.contingency_tables import mcnemar

    exact = float(mcnemar([[0, n01], [n10, 0]], exact=True).pvalue)
    # statsmodels corrects even when n01 == n10 ((0 - 1)^2 > 0: p = 0.48 for 1 vs 1); R corrects only a nonzero gap
    stat = max(0, abs(n01 - n10) - 1) ** 2 / (n01 + n10)
    return min(1.0, exact), float(chi2_dist.sf(stat, 1))


def corrected(pvalues: Sequence[float]) -> tuple[list[float], list[float]]:
    """(Bonferroni, Holm) adjusted p-values over the family `pvalues`, in input order."""
    if not pvalues:
        return [], []
    # Holm by its definition rather than statsmodels' multipletests, which runs gc.collect() on every call
    # (0.1 s each: the simulations of tests/test_verdict.py call it thousands of times); the tests check both agree
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    bonf = np.minimum(1.0, p * m)
    order = np.argsort(p, kind="stable")
    steps = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    holm = np.empty(m)
    holm[order] = steps
    return [float(x) for x in bonf], [float(x) for x in holm]


def interaction_ms(x: np.ndarray) -> float:
    """Seed-by-item interaction mean square of one arm's (seeds, items) matrix (two-way ANOVA without replication).

    It estimates the per-checkpoint noise of a single item's score around that item's and that seed's means:
    the part of the spread of per-item seed means that the seed-level term already carries.
    """
    s, n = x.shape
    if s < 2 or n < 2:
        return 0.0
    resid = x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + x.mean()
    return float(np.sum(resid**2) / ((s - 1) * (n - 1)))


@dataclass(frozen=True)
class SeedItemTest:
    """Test of mean(a) - mean(b) with training seeds and items both random (see `seed_item_test`)."""

    diff: float
    se: float
    df: float
    p: float
    ci: list[float]
    var_seeds: float       # s_a^2/S_a + s_b^2/S_b: checkpoint-to-checkpoint spread of per-seed accuracy
    var_items: float       # between-item variance of the true per-item difference, over n (moment estimate)


def seed_item_test(a: np.ndarray, b: np.ndarray, confidence: float) -> SeedItemTest | None:
    """Welch-Satterthwaite t test of the grand-mean difference of two arms, each a (seeds, items) 0/1 matrix on
    the same items; None when either arm has fewer than two seeds (seed noise cannot be estimated then).

    The variance of D = mean(a) - mean(b) has two parts (crossed design: seeds random per arm, items random and
    shared): the spread of per-seed accuracies (seed effect + per-checkpoint item noise), s_a^2/S_a + s_b^2/S_b,
    and the item sampling of the true per-item difference, var_i(d_i)/n less the checkpoint noise it also holds
    (interaction mean squares / S), floored at 0. Degrees of freedom by Satterthwaite. The sign of `diff` is the
    direction of the very statistic tested. The reasons (and the alternatives measured) are in docs/proof.md.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"seed_item_test needs two (seeds, items) matrices on the same items, got {a.shape}, {b.shape}")
    sa, sb, n = a.shape[0], b.shape[0], a.shape[1]
    if sa < 2 or sb < 2 or n < 2:
        return None
    diff = float(a.mean() - b.mean()) + 0.0  # + 0.0: no -0.0
    ca = float(np.var(a.mean(axis=1), ddof=1)) / sa
    cb = float(np.var(b.mean(axis=1), ddof=1)) / sb
    d = a.mean(axis=0) - b.mean(axis=0)
    raw_items = float(np.var(d, ddof=1)) / n
    ci_ = max(0.0, raw_items - (interaction_ms(a) / sa + interaction_ms(b) / sb) / n)
    var = ca + cb + ci_
    if var <= 0.0:
        # no spread at all after the moment correction: fall back to the uncorrected item term (conservative)
        ci_ = raw_items
        var = ca + cb + ci_
    from scipy import stats as sst

    half_q = 1 - (1 - confidence) / 2
    if var <= 0.0:  # every seed and item gives the same difference: it is exact
        return SeedItemTest(diff, 0.0, math.inf, 1.0 if diff == 0 else 0.0, [diff, diff], ca + cb, ci_)
    dof_den = ca**2 / (sa - 1) + cb**2 / (sb - 1) + ci_**2 / (n - 1)
    df = var**2 / dof_den
    se = math.sqrt(var)
    p = float(2 * sst.t.sf(abs(diff) / se, df))
    q = float(sst.t.ppf(half_q, df))
    return SeedItemTest(diff, se, float(df), min(1.0, p), [diff - q * se, diff + q * se], ca + cb, ci_)


SEED_ITEM = "seeds+items Welch-Satterthwaite t"
MCNEMAR_ONE_SEED = "exact McNemar (one checkpoint per side: seed noise not estimated)"


@dataclass
class Comparison:
    """One paired comparison; `a_trials`/`b_trials` name the evaluations (seed-matched) that formed each side.

    `p` is the p-value of `test` (the one the family corrects and the verdict reads); `diff` is the statistic it
    tests and `ci` its interval. `n01`/`n10`/`p_exact`/`p_chi2_cc` are McNemar's table on the per-item seed means:
    with one seed per side that is the test; with several it is a descriptive sign count beside it.
    """

    a: str
    b: str
    split: str
    family: str
    a_trials: list[str]
    b_trials: list[str]
    seeds: list[int]
    n: int
    n01: int
    n10: int
    p_exact: float
    p_chi2_cc: float
    diff: float                                   # mean(a) - mean(b) over the aligned items and seeds
    test: str
    p: float
    ci: list[float] | None                        # interval of `diff` at the configured confidence
    ci_method: str
    per_seed_diff: list[float]                    # accuracy(a) - accuracy(b) at each matched seed
    se: float | None = None
    df: float | None = None
    var_seeds: float | None = None
    var_items: float | None = None
    p_bonferroni: float = float("nan")
    p_holm: float = float("nan")


def _matrix(side: Sequence[tuple[str, Sequence[str], Sequence[float]]], order: list[str]) -> np.ndarray:
    rows = []
    for _, ids, values in side:
        pos = {item: k for k, item in enumerate(ids)}
        rows.append([float(values[pos[i]]) for i in order])
    return np.asarray(rows, dtype=float).reshape(len(rows), len(order))


def compare(
    a_id: str, b_id: str, split: str, family: str,
    a: Sequence[tuple[str, Sequence[str], Sequence[float]]], b: Sequence[tuple[str, Sequence[str], Sequence[float]]],
    settings: BootstrapSettings, seeds: Sequence[int] = (),
) -> Comparison:
    """Paired comparison of two sides, each a list of `(trial_id, item_ids, correct)`, one per matched seed
    (`seeds`, in the same order). Two or more seeds a side: `seed_item_test`; one: exact McNemar."""
    if not a or not b:
        raise ValueError(f"compare {a_id} vs {b_id}: each side needs at least one evaluation")
    order, _, _ = align([(ids, c) for _, ids, c in a], [(ids, c) for _, ids, c in b])
    ma, mb = _matrix(a, order), _matrix(b, order)
    va, vb = ma.mean(axis=0), mb.mean(axis=0)
    n01, n10 = mcnemar_counts(va, vb)
    p_exact, p_chi2 = mcnemar_pvalues(n01, n10)
    d = va - vb
    per_seed = ([float(x) + 0.0 for x in ma.mean(axis=1) - mb.mean(axis=1)]
                if ma.shape[0] == mb.shape[0] and order else [])
    common = dict(
        a=a_id, b=b_id, split=split, family=family, a_trials=[t for t, _, _ in a], b_trials=[t for t, _, _ in b],
        seeds=list(seeds), n=int(d.size), n01=n01, n10=n10, p_exact=p_exact, p_chi2_cc=p_chi2,
        diff=float(d.mean()) + 0.0 if d.size else 0.0, per_seed_diff=per_seed,
    )
    t = seed_item_test(ma, mb, settings.confidence) if d.size else None
    if t is not None:
        return Comparison(**common, test=SEED_ITEM, p=t.p, ci=t.ci, ci_method="t (seeds+items)", se=t.se,  # type: ignore[arg-type]
                          df=t.df, var_seeds=t.var_seeds, var_items=t.var_items)
    return Comparison(**common, test=MCNEMAR_ONE_SEED, p=p_exact, ci=bootstrap_ci(d, settings, proportion=False)["bca"],  # type: ignore[arg-type]
                      ci_method="BCa bootstrap over items (checkpoints fixed)")


def correct_family(comparisons: list[Comparison]) -> None:
    """Fill `p_bonferroni` and `p_holm` of each comparison, over the family they form together."""
    bonf, holm = corrected([c.p for c in comparisons])
    for c, pb, ph in zip(comparisons, bonf, holm, strict=True):
        c.p_bonferroni, c.p_holm = pb, ph


def seed_summary(accuracies: Sequence[float]) -> dict[str, float | int | None]:
    """Mean and spread of one arm's per-seed accuracies (sd with ddof=1; None for a single seed)."""
    x = np.asarray(accuracies, dtype=float)
    if x.size == 0:
        return {"n_seeds": 0, "mean": None, "sd": None, "min": None, "max": None}
    return {
        "n_seeds": int(x.size),
        "mean": float(x.mean()),
        "sd": float(x.std(ddof=1)) if x.size > 1 else None,
        "min": float(x.min()),
        "max": float(x.max()),
    }
