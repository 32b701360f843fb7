"""Mean dev accuracy by round for several runs (e.g. `feedback` vs `random` mode), as a Markdown table.

    python3 scripts/mode_summary.py runs/fvr/feedback runs/fvr/random [--json]

Per run and round: candidates proposed, evaluated, the mean and best dev accuracy of the evaluated ones, and
the mean extraction rate; the baseline (base rewards only) on its own line. Dev split only, like the ranking.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from rewardsearch.search.status import run_status
from rewardsearch.store import Store


def summary(run_dir: Path) -> dict:
    st = run_status(run_dir, Store.in_dir(run_dir))
    base, cands = st["candidates"][0], st["candidates"][1:]
    cfg = Store.in_dir(run_dir).get_meta("config") or {}
    rounds = []
    for r in sorted({c["round"] for c in cands}):
        these = [c for c in cands if c["round"] == r]
        acc = [c["dev"]["accuracy"] for c in these if c["state"] == "evaluated" and c["dev"]]
        ext = [c["dev"]["extraction_rate"] for c in these if c["state"] == "evaluated" and c["dev"]]
        # last-number accuracy: the diagnostic that still moves when no completion uses the solution tags
        flex = [c["dev"]["flex_accuracy"] for c in these if c["state"] == "evaluated" and c["dev"]]
        rounds.append({
            "round": r, "proposed": len(these), "evaluated": len(acc),
            "mean_dev_accuracy": statistics.fmean(acc) if acc else None, "best_dev_accuracy": max(acc, default=None),
            "mean_extraction_rate": statistics.fmean(ext) if ext else None,
            "mean_flex_accuracy": statistics.fmean(flex) if flex else None, "best_flex_accuracy": max(flex, default=None),
        })
    return {
        "run": str(run_dir), "mode": cfg.get("search", {}).get("mode"), "proposer": st["proposer"],
        "status": st["status"], "baseline_dev_accuracy": base["dev"]["accuracy"] if base["dev"] else None,
        "baseline_flex_accuracy": base["dev"]["flex_accuracy"] if base["dev"] else None,
        "rounds": rounds,
    }


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = [summary(r) for r in args.runs]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print("| run | mode | round | proposed | evaluated | mean dev acc | best dev acc | mean extraction "
          "| mean flex acc | best flex acc |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for s in rows:
        print(f"| {s['run']} | {s['mode']} | baseline | | | {_f(s['baseline_dev_accuracy'])} | | | "
              f"{_f(s['baseline_flex_accuracy'])} | |")
        for r in s["rounds"]:
            print(f"| {s['run']} | {s['mode']} | {r['round']} | {r['proposed']} | {r['evaluated']} | "
                  f"{_f(r['mean_dev_accuracy'])} | {_f(r['best_dev_accuracy'])} | {_f(r['mean_extraction_rate'])} | "
                  f"{_f(r['mean_flex_accuracy'])} | {_f(r['best_flex_accuracy'])} |")


if __name__ == "__main__":
    main()
