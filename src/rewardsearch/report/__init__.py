"""Run reports: Markdown leaderboard and a self-contained HTML page."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from rewardsearch.report.markdown import leaderboard_markdown


def write_report(run_dir: Path, status: dict[str, Any], evaluations: list[dict[str, Any]]) -> Path:
    """Write `report.md`, `index.html` and `results.json` under `run_dir/report`; returns the directory."""
    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    md = leaderboard_markdown(status)
    (out / "report.md").write_text(md)
    (out / "index.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>rewardsearch report</title>"
        "<style>body{font-family:sans-serif;max-width:80em;margin:2em auto}pre{white-space:pre-wrap}</style>"
        f"<pre>{html.escape(md)}</pre>"
    )
    results = {"status": status, "evaluations": evaluations, "comparisons": []}
    (out / "results.json").write_text(json.dumps(results, indent=1))
    return out
