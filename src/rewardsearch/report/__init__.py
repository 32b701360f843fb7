"""Run reports: `results.json` (every statistic with the vectors behind it), a self-contained HTML page with
figures, and a Markdown summary. `write_report(run_dir, store)` writes all three under `run_dir/report/`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rewardsearch.store import Store


def write_report(run_dir: Path, store: Store) -> Path:
    """Write `index.html`, `report.md` and `results.json` under `run_dir/report`; returns the directory."""
    from rewardsearch.report.figures import all_figures
    from rewardsearch.report.html import render_html
    from rewardsearch.report.markdown import report_markdown
    from rewardsearch.report.results import build_results, final_table

    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    results = build_results(run_dir, store)
    final = final_table(results) if results["arms"] else []
    (out / "results.json").write_text(json.dumps(_finite(results), indent=1, allow_nan=False, default=str))
    (out / "report.md").write_text(report_markdown(results, final))
    (out / "index.html").write_text(render_html(results, all_figures(results), final))
    return out


def _finite(obj: Any) -> Any:
    """NaN and infinities become null: results.json is strict JSON that any reader can load."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj
