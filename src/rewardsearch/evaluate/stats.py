"""Statistics over stored per-item correctness vectors: bootstrap CIs, paired tests, multiple-comparison corrections.

Everything here takes plain vectors (one 0/1 value per item, or per-item means over training seeds) so that a
reader can recompute every number in `results.json` from the vectors stored beside it. The recipes:

- **Bootstrap CI** of a mean (accuracy, or the mean paired difference): `scipy.stats.bootstrap` on the one
  vector, `n_resamples`, `confidence_level`, `rng=numpy.random.default_rng(seed)` freshly made for each call,
  once with `method="percentile"` and once with `method="BCa"`. When every value is equal the bootstrap
  distribution is a single point: both intervals are `[v, v]` (scipy would return NaN for BCa). A non-finite
  interval that scipy returns otherwise is reported as `null`.
- **Paired comparison** of two trials (or two multi-seed arms) on the same items: align on item ids; each side's
  per-item value is its correctness averaged over the seeds it has (a single trial: 0/1). `n01` counts items
  where `a` scores lower than `b`, `n10` the reverse. With one seed per side this is exactly McNemar's table.
  `p_exact`: statsmodels' exact McNemar (two-sided binomial test of n10 among n01+n10 at 1/2); `p_chi2_cc`:
  McNemar's chi-square with continuity correction, (|n01-n10|-1)^2/(n01+n10) on 1 df. With no discordant
  items both are 1.0 (statsmodels would divide by zero). Averaging seeds per item keeps the item the unit of
  the test, so seeds of one item are never counted as independent evidence.
- **Corrections** over a family of comparisons: Bonferroni (min(1, m*p)) and Holm's step-down adjusted p-values
  (`statsmodels.stats.multitest.multipletests`), applied to `p_exact`.
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
            "degenerate_rule": "all values equal -> [v, v] for both methods; other non-finite bounds -> null",
        }


def _finite_pair(lo: float, hi: float) -> list[float] | None:
    return [float(lo), float(hi)] if math.isfinite(lo) and math.isfinite(hi) else None


def bootstrap_ci(values: Sequence[float], settings: BootstrapSettings) -> dict[str, list[float] | None]:
    """Percentile and BCa bootstrap CIs of the mean of `values` (see the module docstring for the recipe)."""
    from scipy.stats import bootstrap

    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return {"percentile": None, "bca": None}
    if np.all(x == x[0]):
        v = float(x[0])
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
    from statsmodels.stats.contingency_tables import mcnemar

    table = [[0, n01], [n10, 0]]
    exact = float(mcnemar(table, exact=True).pvalue)
    chi2 = float(mcnemar(table, exact=False, correction=True).pvalue)
    return min(1.0, exact), chi2


def corrected(pvalues: Sequence[float]) -> tuple[list[float], list[float]]:
    """(Bonferroni, Holm) adjusted p-values over the family `pvalues`, in input order."""
    if not pvalues:
        return [], []
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(pvalues, dtype=float)
    bonf = np.minimum(1.0, p * len(p))
    holm = multipletests(p, method="holm")[1]
    return [float(x) for x in bonf], [float(x) for x in holm]


@dataclass
class Comparison:
    """One paired comparison; `a_trials`/`b_trials` name the evaluations (seed-matched) that formed each side."""

    a: str
    b: str
    split: str
    family: str
    a_trials: list[str]
    b_trials: list[str]
    n: int
    n01: int
    n10: int
    p_exact: float
    p_chi2_cc: float
    diff: float                                  # mean(a) - mean(b) over the aligned items
    diff_ci95: dict[str, list[float] | None]      # bootstrap of the per-item differences
    p_bonferroni: float = float("nan")
    p_holm: float = float("nan")


def compare(
    a_id: str, b_id: str, split: str, family: str,
    a: Sequence[tuple[str, Sequence[str], Sequence[float]]], b: Sequence[tuple[str, Sequence[str], Sequence[float]]],
    settings: BootstrapSettings,
) -> Comparison:
    """Paired comparison of two sides, each a list of `(trial_id, item_ids, correct)` (one per matched seed)."""
    _, va, vb = align([(ids, c) for _, ids, c in a], [(ids, c) for _, ids, c in b])
    assert vb is not None
    n01, n10 = mcnemar_counts(va, vb)
    p_exact, p_chi2 = mcnemar_pvalues(n01, n10)
    d = va - vb
    return Comparison(
        a=a_id, b=b_id, split=split, family=family, a_trials=[t for t, _, _ in a], b_trials=[t for t, _, _ in b],
        n=int(d.size), n01=n01, n10=n10, p_exact=p_exact, p_chi2_cc=p_chi2,
        diff=float(d.mean()) + 0.0 if d.size else 0.0, diff_ci95=bootstrap_ci(d, settings),  # + 0.0: no -0.0
    )


def correct_family(comparisons: list[Comparison]) -> None:
    """Fill `p_bonferroni` and `p_holm` of each comparison, over the family they form together."""
    bonf, holm = corrected([c.p_exact for c in comparisons])
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
