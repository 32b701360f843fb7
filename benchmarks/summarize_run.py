"""Turn a finished run directory into one benchmark record (JSON on stdout).

    python benchmarks/summarize_run.py runs/gpu --machine "H200 (device tool)" > benchmarks/results/NAME.json

Per trial: kind, name, dev accuracy with its 95% CI, flexible accuracy, extraction rate, training wall time,
steps, the share of zero-variance GRPO groups and the candidate reward's first/last logged mean. The baseline
(base rewards only) is one of the rows, measured in the same run as the candidates.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

from rewardsearch.search.status import run_status
from rewardsearch.store import Store


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--machine", default=platform.node())
    ap.add_argument("--versions-from", type=Path, help="a JSON file of versions recorded where the run ran")
    args = ap.parse_args()
    store = Store.in_dir(args.run_dir)
    status = run_status(args.run_dir, store)
    rows = []
    for c in status["candidates"]:
        t = store.trial(c["trial"]["id"]) if c.get("trial") else None
        curves = [h for h in (t.curves if t else []) if "reward" in h]
        reward_key = f"rewards/{c['name']}/mean"
        rows.append({
            "name": c["name"], "origin": c["origin"], "round": c["round"], "state": c["state"],
            "dev": c["dev"], "train_wall_s": t.wall_s if t else None,
            "job_wall_s": (t.metrics.get("job_wall_s") if t else None), "steps": (t.metrics.get("steps") if t else None),
            "frac_reward_zero_std_mean": c["trial"]["frac_reward_zero_std"] if c.get("trial") else None,
            "candidate_reward_first_last": (
                [curves[0].get(reward_key), curves[-1].get(reward_key)] if curves and reward_key in curves[0] else None
            ),
        })
    versions = (json.loads(args.versions_from.read_text()) if args.versions_from else
                {p: _version(p) for p in ("torch", "transformers", "trl", "peft")} | {"python": sys.version.split()[0]})
    print(json.dumps({
        "what": "one search run: baseline (base rewards only) and candidates, same run, same budget",
        "machine": args.machine, "date": time.strftime("%Y-%m-%d"), "versions": versions,
        "config_hash": status["config_hash"], "config": store.get_meta("config"), "trials": rows,
    }, indent=1))


if __name__ == "__main__":
    main()
