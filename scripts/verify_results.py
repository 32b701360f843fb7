"""Recompute every statistic, family and verdict in a report's results.json from the per-item vectors it holds.

    python3 scripts/verify_results.py runs/smoke/report/results.json [--tol 1e-9]

Independent of rewardsearch (it imports nothing from it) and of statsmodels, and written apart from its code path:
Wilson intervals from the normal quantile at the file's confidence, exact McNemar as scipy's two-sided binomial
test, the chi-square variant from its formula (no correction when n01 = n10, as R), the seeds+items t test from
two-way ANOVA sums of squares, Holm and Bonferroni by hand, bootstrap intervals with scipy.stats.bootstrap under
the recipe the file states. It also rebuilds which comparisons each family must hold, the ranking of the final
arms and the verdict, from the rules docs/proof.md states. Prints the largest deviation per kind of check and
exits 1 if any exceeds the tolerance (a wrong family, rank or verdict counts as an infinite deviation).
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


def wilson(k: float, n: int, conf: float) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    z = stats.norm.ppf(1 - (1 - conf) / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def boot(values: np.ndarray, b: dict, conf: float, proportion: bool = True) -> dict[str, list[float] | None]:
    if values.size == 0:
        return {"percentile": None, "bca": None}
    if np.all(values == values[0]):
        v = float(values[0])
        if proportion and 0 <= v <= 1:
            w = list(wilson(v * values.size, values.size, conf))
            return {"percentile": w, "bca": w}
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


def seeds_items_t(a: np.ndarray, b: np.ndarray, conf: float) -> tuple[float, list[float]]:
    """(p, interval) of mean(a) - mean(b); a, b: (seeds, items). Variance = Welch part on per-seed accuracies +
    item part var(d)/n less each arm's interaction mean square / (seeds * n), floored at 0 (uncorrected if the
    total is 0); Satterthwaite df."""
    def interaction(x: np.ndarray) -> float:
        s, n = x.shape
        g = x.mean()
        ss_total = float(((x - g) ** 2).sum())
        ss_rows = n * float(((x.mean(axis=1) - g) ** 2).sum())
        ss_cols = s * float(((x.mean(axis=0) - g) ** 2).sum())
        return (ss_total - ss_rows - ss_cols) / ((s - 1) * (n - 1)) if n > 1 else 0.0

    sa, n = a.shape
    sb = b.shape[0]
    diff = a.sum() / a.size - b.sum() / b.size
    ra, rb = a.sum(axis=1) / n, b.sum(axis=1) / n
    wa = ((ra - ra.mean()) ** 2).sum() / (sa - 1) / sa
    wb = ((rb - rb.mean()) ** 2).sum() / (sb - 1) / sb
    d = a.sum(axis=0) / sa - b.sum(axis=0) / sb
    raw = ((d - d.mean()) ** 2).sum() / (n - 1) / n
    it = max(0.0, raw - (interaction(a) / sa + interaction(b) / sb) / n)
    if wa + wb + it <= 0:
        it = raw
    v = wa + wb + it
    if v <= 0:
        return (1.0 if diff == 0 else 0.0), [diff, diff]
    df = v * v / (wa * wa / (sa - 1) + wb * wb / (sb - 1) + it * it / (n - 1))
    t = abs(diff) / math.sqrt(v)
    q = stats.t.isf((1 - conf) / 2, df)
    return min(1.0, 2 * stats.t.sf(t, df)), [diff - q * math.sqrt(v), diff + q * math.sqrt(v)]


KIND_ORDER = {"ensemble": 0, "single": 1, "control": 2}


def expected_verdict(ranked: list[dict], comps: list[dict], alpha: float, final_done: bool) -> dict | None:
    if not ranked:
        return None
    top = ranked[0]
    if not final_done:
        return {"verdict": "incomplete", "arm": top["id"], "runner_up": None}
    if len(ranked) < 2:
        return {"verdict": "only arm", "arm": top["id"], "runner_up": None}
    second = ranked[1]
    c, sign = None, 1.0
    for x in comps:
        if (x["a"], x["b"]) == (top["id"], second["id"]):
            c = x
        elif (x["a"], x["b"]) == (second["id"], top["id"]):
            c, sign = x, -1.0
    out = {"arm": top["id"], "runner_up": second["id"]}
    if c is None:
        return {**out, "verdict": "not compared"}
    if not c["test"].startswith("seeds+items"):
        return {**out, "verdict": "unreplicated"}
    if c["p_holm"] < alpha:
        return {**out, "verdict": "winner" if sign * c["diff"] > 0 else "reversed"}
    return {**out, "verdict": "tied"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("--tol", type=float, default=1e-9)
    args = ap.parse_args(argv)
    try:
        with open(args.results) as fh:
            r = json.load(fh)
    except (OSError, ValueError) as exc:
        print(f"cannot read {args.results}: {exc}", file=sys.stderr)
        return 2
    b = r["settings"]["bootstrap"]
    conf = r["settings"].get("confidence", b["confidence_level"])
    alpha = r["settings"]["alpha"]
    dev: dict[str, float] = defaultdict(float)
    checked: dict[str, int] = defaultdict(int)

    def note(kind: str, got: object, want: object) -> None:
        checked[kind] += 1
        if got is None or want is None:
            if (got is None) != (want is None):
                dev[kind] = math.inf
            return
        g, w = np.ravel(np.asarray(got, dtype=float)), np.ravel(np.asarray(want, dtype=float))
        if g.shape != w.shape:
            dev[kind] = math.inf
            return
        for x, y in zip(g, w, strict=True):
            dev[kind] = max(dev[kind], abs(float(x) - float(y)))

    def same(kind: str, got: object, want: object) -> None:
        checked[kind] += 1
        if got != want:
            dev[kind] = math.inf
            print(f"{kind}: got {got!r}, expected {want!r}")

    vec = {}
    for e in r["evaluations"]:
        c = np.asarray(e["correct"], dtype=float)
        vec[(e["trial"], e["split"])] = (e["item_ids"], c)
        note("accuracy", e["accuracy"], c.mean() if c.size else 0.0)
        note("wilson", e["ci95"], wilson(float(c.sum()), c.size, conf))
        want = boot(c, b, conf)
        for k in ("percentile", "bca"):
            note(f"bootstrap_{k}", e["bootstrap"][k], want[k])

    def matrix(trials: list[str], split: str, items: list[str]) -> np.ndarray:
        rows = []
        for t in trials:
            ids, v = vec[(t, split)]
            where = dict(zip(ids, range(len(ids)), strict=True))
            rows.append([v[where[i]] for i in items])
        return np.asarray(rows, dtype=float).reshape(len(trials), len(items))

    def common_items(trials: list[str], split: str) -> list[str]:
        first = vec[(trials[0], split)][0]
        keep = set(first)
        for t in trials[1:]:
            keep &= set(vec[(t, split)][0])
        return [i for i in first if i in keep]

    families: dict[str, list[dict]] = defaultdict(list)
    for c in r["comparisons"]:
        families[c["family"]].append(c)
        items = common_items(c["a_trials"] + c["b_trials"], c["split"])
        a, bb = matrix(c["a_trials"], c["split"], items), matrix(c["b_trials"], c["split"], items)
        ma, mb = a.mean(axis=0), bb.mean(axis=0)
        n01, n10 = int(np.sum(ma < mb)), int(np.sum(ma > mb))
        note("counts", [c["n01"], c["n10"], c["n"]], [n01, n10, len(items)])
        n = n01 + n10
        p_exact = 1.0 if n == 0 else stats.binomtest(n10, n, 0.5).pvalue
        p_chi2 = 1.0 if n == 0 else stats.chi2.sf(max(0, abs(n01 - n10) - 1) ** 2 / n, 1)
        note("p_exact", c["p_exact"], p_exact)
        note("p_chi2_cc", c["p_chi2_cc"], p_chi2)
        note("diff", c["diff"], float((ma - mb).mean()) if items else 0.0)
        if a.shape[0] == bb.shape[0]:
            note("per_seed_diff", c["per_seed_diff"], a.mean(axis=1) - bb.mean(axis=1))
        if a.shape[0] >= 2 and bb.shape[0] >= 2 and len(items) >= 2:
            same("test_choice", c["test"].startswith("seeds+items"), True)
            p_t, ci = seeds_items_t(a, bb, conf)
            note("p_seeds_items", c["p"], p_t)
            note("ci_seeds_items", c["ci"], ci)
        else:
            same("test_choice", c["test"].startswith("exact McNemar"), True)
            note("p_tested_mcnemar", c["p"], p_exact)
            note("ci_one_seed_bca", c["ci"], boot(ma - mb, b, conf, proportion=False)["bca"])
    for comps in families.values():
        ps = [c["p"] for c in comps]
        note("p_bonferroni", [c["p_bonferroni"] for c in comps], [min(1.0, p * len(ps)) for p in ps])
        note("p_holm", [c["p_holm"] for c in comps], holm(ps))

    # -- family membership, rebuilt from the rules -------------------------------------------------------------
    rows = r["status"]["candidates"]
    scored = [x for x in rows if x["origin"] != "baseline" and x["state"] == "evaluated" and x["dev"]]
    scored.sort(key=lambda x: (-x["dev"]["accuracy"], -x["dev"]["extraction_rate"], -x["dev"]["flex_accuracy"],
                               x["round"], x["id"]))
    units = [x["trial"]["id"] for x in scored[: r["settings"]["matrix_top"]]]
    units += [x["trial"]["id"] for x in rows if x["origin"] == "baseline" and x["dev"] and x.get("trial")]
    same("family_dev_units", r["families"]["dev-candidates"]["units"], units)
    same("family_dev_pairs", sorted((c["a"], c["b"]) for c in families.get("dev-candidates", [])),
         sorted((u, v) for i, u in enumerate(units) for v in units[i + 1:]))
    arms = [a for a in r["arms"] if a["test"]]
    same("family_test_units", r["families"]["test-final"]["units"], [a["id"] for a in arms])
    pairs = {}
    for i, x in enumerate(arms):
        for y in arms[i + 1:]:
            common = sorted(set(x["test"]["seeds"]) & set(y["test"]["seeds"]))
            tx = [t for s, t in zip(x["test"]["seeds"], x["test"]["trials"], strict=True) if s in common]
            ty = [t for s, t in zip(y["test"]["seeds"], y["test"]["trials"], strict=True) if s in common]
            if common and tx != ty:
                pairs[(x["id"], y["id"])] = (tx, ty, common)
    got = {(c["a"], c["b"]): (c["a_trials"], c["b_trials"], c["seeds"]) for c in families.get("test-final", [])}
    same("family_test_pairs", got, pairs)

    # -- arms, their ranking and the verdict ---------------------------------------------------------------------
    split = r["selection_split"]
    scores = {}
    for a in r["arms"]:
        for sp in ("dev", "test"):
            s = a[sp]
            if not s:
                continue
            items = common_items(s["trials"], sp)
            m = matrix(s["trials"], sp, items).mean(axis=0)
            note("arm_accuracy", s["accuracy"], m.mean())
            per_seed = [vec[(t, sp)][1].mean() for t in s["trials"]]
            note("arm_per_seed", s["per_seed"], per_seed)
            sd = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else None
            note("arm_seed_sd", s["seed_summary"]["sd"], sd)
            want = boot(m, b, conf)
            for k in ("percentile", "bca"):
                note(f"arm_bootstrap_{k}", s["bootstrap"][k], want[k])
            if sp == split and not a["meta"].get("same_set_as"):
                scores[a["id"]] = float(np.mean(per_seed))
    by_id = {a["id"]: a for a in r["arms"]}
    order = sorted(scores, key=lambda i: (-scores[i], KIND_ORDER.get(by_id[i]["kind"], 3), len(by_id[i]["members"]), i))
    same("arm_ranks", {a["id"]: a["rank"] for a in r["arms"]},
         {a["id"]: (order.index(a["id"]) + 1 if a["id"] in scores else None) for a in r["arms"]})
    want_v = expected_verdict([by_id[i] for i in order], families.get("test-final", []), alpha,
                              r.get("final_status") == "done")
    w = r.get("winner")
    same("verdict", w and {k: w[k] for k in ("verdict", "arm", "runner_up")}, want_v)

    worst = max(dev.values(), default=0.0)
    for kind in sorted(checked):
        print(f"{kind:28s} {checked[kind]:5d} checked, max |deviation| {dev[kind]:.3g}")
    ok = worst <= args.tol
    print(f"{'OK' if ok else 'MISMATCH'}: largest deviation {worst:.3g} (tolerance {args.tol:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
