"""Recompute every statistic in a report's results.json from the per-item vectors it holds, with numpy and scipy only.

    python3 scripts/verify_results.py runs/smoke/report/results.json [--tol 1e-9]

Independent of rewardsearch (it imports nothing from it) and of statsmodels: Wilson intervals from the normal
quantile, exact McNemar as scipy's two-sided binomial test, the chi-square variant from its formula, Holm and
Bonferroni by hand, bootstrap intervals with scipy.stats.bootstrap under the recipe the file states. Prints the
largest deviation found per kind of statistic and exits 1 if any exceeds the tolerance.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from collections import defaultdict

import numpy as np
from scipy import stats


def wilson(k: int, n: int, conf: float) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    z = stats.norm.ppf(1 - (1 - conf) / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def boot(values: np.ndarray, b: dict) -> dict[str, list[float] | None]:
    if values.size == 0:
        return {"percentile": None, "bca": None}
    if np.all(values == values[0]):
        v = float(values[0])
        return {"percentile": [v, v], "bca": [v, v]}
    out = {}
    for key, method in (("percentile", "percentile"), ("bca", "BCa")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = stats.bootstrap((values,), np.mean, n_resamples=b["n_resamples"], confidence_level=b["confidence_level"],
                                method=method, vectorized=True, rng=np.random.default_rng(b["seed"]))
        lo, hi = float(r.confidence_interval.low), float(r.confidence_interval.high)
        out[key] = [lo, hi] if math.isfinite(lo) and math.isfinite(hi) else None
    return out


def holm(p: list[float]) -> list[float]:
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adj = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("--tol", type=float, default=1e-9)
    args = ap.parse_args(argv)
    r = json.load(open(args.results))
    b = r["settings"]["bootstrap"]
    conf = b["confidence_level"]
    dev: dict[str, float] = defaultdict(float)
    checked: dict[str, int] = defaultdict(int)

    def note(kind: str, got: object, want: object) -> None:
        checked[kind] += 1
        if got is None or want is None:
            if (got is None) != (want is None):
                dev[kind] = math.inf
            return
        for g, w in zip(np.ravel(got), np.ravel(want), strict=True):
            dev[kind] = max(dev[kind], abs(float(g) - float(w)))

    vec = {}
    for e in r["evaluations"]:
        c = np.asarray(e["correct"], dtype=float)
        vec[(e["trial"], e["split"])] = (e["item_ids"], c)
        note("accuracy", e["accuracy"], c.mean() if c.size else 0.0)
        note("wilson", e["ci95"], wilson(int(c.sum()), c.size, conf))
        want = boot(c, b)
        for k in ("percentile", "bca"):
            note(f"bootstrap_{k}", e["bootstrap"][k], want[k])

    def side(trials: list[str], split: str, items: list[str] | None = None) -> tuple[list[str], np.ndarray]:
        vs = [vec[(t, split)] for t in trials]
        common = set(vs[0][0])
        for ids, _ in vs[1:]:
            common &= set(ids)
        order = items or [i for i in vs[0][0] if i in common]
        rows = [[v[dict(zip(ids, range(len(ids)), strict=True))[i]] for i in order] for ids, v in vs]
        return order, np.mean(np.asarray(rows, dtype=float), axis=0)

    families: dict[str, list[dict]] = defaultdict(list)
    for c in r["comparisons"]:
        families[c["family"]].append(c)
        ids_a, _ = side(c["a_trials"], c["split"])
        ids_b, _ = side(c["b_trials"], c["split"])
        items = [i for i in ids_a if i in set(ids_b)]
        _, a = side(c["a_trials"], c["split"], items)
        _, bb = side(c["b_trials"], c["split"], items)
        n01, n10 = int(np.sum(a < bb)), int(np.sum(a > bb))
        note("counts", [c["n01"], c["n10"], c["n"]], [n01, n10, len(items)])
        n = n01 + n10
        p_exact = 1.0 if n == 0 else stats.binomtest(n10, n, 0.5).pvalue
        p_chi2 = 1.0 if n == 0 else stats.chi2.sf((abs(n01 - n10) - 1) ** 2 / n, 1)
        note("p_exact", c["p_exact"], p_exact)
        note("p_chi2_cc", c["p_chi2_cc"], p_chi2)
        d = a - bb
        note("diff", c["diff"], d.mean() if d.size else 0.0)
        want = boot(d, b)
        for k in ("percentile", "bca"):
            note(f"diff_bootstrap_{k}", c["diff_ci95"][k], want[k])
    for comps in families.values():
        ps = [c["p_exact"] for c in comps]
        note("p_bonferroni", [c["p_bonferroni"] for c in comps], [min(1.0, p * len(ps)) for p in ps])
        note("p_holm", [c["p_holm"] for c in comps], holm(ps))

    for a in r["arms"]:
        for split in ("dev", "test"):
            s = a[split]
            if not s:
                continue
            _, m = side(s["trials"], split)
            note("arm_accuracy", s["accuracy"], m.mean())
            per_seed = [vec[(t, split)][1].mean() for t in s["trials"]]
            note("arm_per_seed", s["per_seed"], per_seed)
            sd = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else None
            note("arm_seed_sd", s["seed_summary"]["sd"], sd)
            want = boot(m, b)
            for k in ("percentile", "bca"):
                note(f"arm_bootstrap_{k}", s["bootstrap"][k], want[k])

    worst = max(dev.values(), default=0.0)
    for kind in sorted(checked):
        print(f"{kind:28s} {checked[kind]:5d} checked, max |deviation| {dev[kind]:.3g}")
    ok = worst <= args.tol
    print(f"{'OK' if ok else 'MISMATCH'}: largest deviation {worst:.3g} (tolerance {args.tol:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
