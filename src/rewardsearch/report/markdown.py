"""The Markdown leaderboard of a run (the HTML report with plots and statistics builds on the same rows)."""

from __future__ import annotations

from typing import Any


def _fmt_eval(e: dict[str, Any] | None) -> tuple[str, str, str]:
    if not e:
        return ("-", "-", "-")
    return (f"{e['accuracy']:.3f}", f"[{e['ci95'][0]:.3f}, {e['ci95'][1]:.3f}]", f"{e['extraction_rate']:.2f}")


def leaderboard_markdown(status: dict[str, Any]) -> str:
    rows = status["candidates"]
    ranked = sorted(
        rows,
        key=lambda r: (r["dev"] is None, -(r["dev"] or {}).get("accuracy", 0.0), r["round"], r["id"]),
    )
    lines = [
        f"# rewardsearch run: {status['run_dir']}",
        "",
        f"Status **{status['status']}**, rounds done {status['rounds_done']}/{status['rounds_total']}, "
        f"task `{status['task']}`, model `{status['model']}`, proposer `{status['proposer']}`, "
        f"config hash `{status['config_hash']}`.",
        "",
        "Ranked on the **dev** split (accuracy = number inside the solution tags equals the gold answer; "
        "95% Wilson CI). The published reference's F1 is 2*acc/(1+acc) and adds nothing beyond accuracy.",
        "",
        "| rank | name | origin | round | state | dev acc | 95% CI | extraction | flex acc | train s | flags |",
        "| ---: | --- | --- | ---: | --- | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for i, r in enumerate(ranked, 1):
        acc, ci, ext = _fmt_eval(r["dev"])
        flex = f"{r['dev']['flex_accuracy']:.3f}" if r["dev"] else "-"
        wall = f"{r['trial']['wall_s']:.0f}" if r.get("trial") and r["trial"].get("wall_s") else "-"
        state = r["state"] + (f" ({r['reason'][:60]})" if r.get("reason") else "")
        lines.append(
            f"| {i} | `{r['name']}` | {r['origin']} | {r['round']} | {state} | {acc} | {ci} | {ext} | {flex} | "
            f"{wall} | {', '.join(r['flags']) or '-'} |"
        )
    return "\n".join(lines) + "\n"
