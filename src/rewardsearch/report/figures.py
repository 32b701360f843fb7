"""The report's figures: matplotlib (Agg backend), each returned as a base64 PNG to embed in the page.

Every figure draws numbers already in the results dict (`report/results.py`); none computes a statistic.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any

KIND_COLORS = {"single": "#4C72B0", "ensemble": "#55A868", "control": "#C44E52"}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display: figures only ever go to PNG bytes
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> str:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _short(label: str, n: int = 28) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


def leaderboard_forest(results: dict[str, Any], top: int = 20) -> str | None:
    """Dev accuracy of the baseline and the best candidates, with Wilson and BCa 95% intervals."""
    rows = [r for r in results["status"]["candidates"] if r["dev"]]
    if not rows:
        return None
    rows.sort(key=lambda r: -r["dev"]["accuracy"])
    rows = rows[:top][::-1]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.2))
    for i, r in enumerate(rows):
        d = r["dev"]
        color = "#888" if r["origin"] == "baseline" else KIND_COLORS["single"]
        lo, hi = d["ci95"]
        ax.plot([lo, hi], [i + 0.12, i + 0.12], color=color, lw=2, alpha=0.5)
        bca = (d.get("bootstrap") or {}).get("bca")
        if bca:
            ax.plot(bca, [i - 0.12, i - 0.12], color=color, lw=2)
        ax.plot([d["accuracy"]], [i], "o", color=color)
    ax.set_yticks(range(len(rows)), [_short(r["name"]) for r in rows], fontsize=8)
    ax.set_xlabel("dev accuracy (upper bar: Wilson 95% CI, lower: bootstrap BCa 95% CI)")
    ax.set_xlim(-0.02, 1.02)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def rounds(results: dict[str, Any]) -> str | None:
    """Dev accuracy of every evaluated candidate by round, with the round's mean and best, and the baseline."""
    rs = results["rounds"]
    if not rs:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for r in rs:
        xs = [r["round"] + 0.06 * (j - (len(r["accuracies"]) - 1) / 2) for j in range(len(r["accuracies"]))]
        ax.plot(xs, r["accuracies"], "o", color=KIND_COLORS["single"], alpha=0.45, ms=5)
    ax.plot([r["round"] for r in rs], [r["mean"] for r in rs], "-", color="black", label="mean")
    ax.plot([r["round"] for r in rs], [r["best"] for r in rs], "--", color=KIND_COLORS["ensemble"], label="best")
    base = results["status"]["candidates"][0]
    if base.get("dev"):
        ax.axhline(base["dev"]["accuracy"], color="#888", ls=":", label="baseline")
    ax.set_xticks([r["round"] for r in rs])
    ax.set_xlabel("round")
    ax.set_ylabel("dev accuracy")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def arms(results: dict[str, Any], split: str = "test") -> str | None:
    """Each final arm's accuracy (mean over seeds) with its bootstrap BCa 95% CI, and the per-seed values."""
    rows = [a for a in results["arms"] if a[split]]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2))
    for i, a in enumerate(rows[::-1]):
        s = a[split]
        color = KIND_COLORS.get(a["kind"], "#333")
        ci = s["bootstrap"]["bca"] or s["bootstrap"]["percentile"]
        ax.barh(i, s["accuracy"], color=color, alpha=0.35)
        if ci:
            ax.plot(ci, [i, i], color=color, lw=2.5)
        ax.plot(s["per_seed"], [i] * len(s["per_seed"]), "|", color="black", ms=10)
    ax.set_yticks(range(len(rows)), [_short(f"{a['label']} ({a['kind']})", 34) for a in rows[::-1]], fontsize=8)
    ax.set_xlabel(f"{split} accuracy: bar = mean over seeds, line = BCa 95% CI over items, ticks = seeds")
    ax.set_xlim(0, 1)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def matrix(results: dict[str, Any], family: str) -> str | None:
    """Holm-corrected p-values of a family as a heatmap, marked with the family's own marker where below alpha
    ('*' for the confirmatory test family, '°' for the exploratory dev family: the two are not the same evidence)."""
    fam = results["families"].get(family)
    comps = [c for c in results["comparisons"] if c["family"] == family]
    if not fam or not comps:
        return None
    units = fam["units"]
    labels = {}
    for c in comps:
        labels[c["a"]], labels[c["b"]] = c["a_label"], c["b_label"]
    idx = {u: i for i, u in enumerate(units)}
    n = len(units)
    grid = [[math.nan] * n for _ in range(n)]
    for c in comps:
        i, j = idx[c["a"]], idx[c["b"]]
        grid[i][j] = grid[j][i] = c["p_holm"]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(0.55 * n + 3, 0.55 * n + 2))
    im = ax.imshow(grid, cmap="viridis_r", vmin=0, vmax=1)
    for c in comps:
        i, j = idx[c["a"]], idx[c["b"]]
        text = f"{c['p_holm']:.2f}" + (fam.get("marker", "*") if c["p_holm"] < fam["alpha"] else "")
        for (r, k) in ((i, j), (j, i)):
            ax.text(k, r, text, ha="center", va="center", fontsize=7, color="black" if c["p_holm"] < 0.5 else "white")
    names = [_short(labels.get(u, u), 22) for u in units]
    ax.set_xticks(range(n), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n), names, fontsize=7)
    fig.colorbar(im, ax=ax, label="Holm-corrected p (the family's tested p)")
    kind = "confirmatory" if fam.get("confirmatory", True) else "exploratory, chosen after looking"
    ax.set_title(f"{family} ({kind}): m={fam['m']}, '{fam.get('marker', '*')}' = p_holm < {fam['alpha']}", fontsize=9)
    return _png(fig)


def curves(results: dict[str, Any]) -> str | None:
    """Training curves per reward component (TRL's logged means; raw means for z-scored members)."""
    cs = results["curves"]
    if not cs:
        return None
    plt = _plt()
    fig, axes = plt.subplots(len(cs), 1, figsize=(8, 2.6 * len(cs)), squeeze=False)
    for ax, c in zip(axes[:, 0], cs, strict=True):
        for name, ys in c["rewards"].items():
            pts = [(x, y) for x, y in zip(c["step"], ys, strict=False) if y is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=_short(name, 30))
        ax.set_title(_short(f"{c['label']} ({c['trial']})", 80), fontsize=9)
        ax.set_xlabel("GRPO step")
        ax.set_ylabel("mean reward")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return _png(fig)


def all_figures(results: dict[str, Any]) -> dict[str, str | None]:
    return {
        "leaderboard": leaderboard_forest(results),
        "rounds": rounds(results),
        "arms_test": arms(results, "test"),
        "arms_dev": arms(results, "dev"),
        "matrix_test": matrix(results, "test-final"),
        "matrix_dev": matrix(results, "dev-candidates"),
        "curves": curves(results),
    }
