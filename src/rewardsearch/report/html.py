"""The self-contained HTML page: the jinja2 template `templates/report.html.j2`, figures inlined as base64 PNGs.

No network: no scripts, fonts or stylesheets from elsewhere; the page renders from the file alone.
"""

from __future__ import annotations

import math
from typing import Any

from rewardsearch.search.hacking import arrow
from rewardsearch.search.ranking import rank_key


def _num(fmt: str) -> Any:
    def f(x: Any) -> str:
        if not isinstance(x, int | float) or (isinstance(x, float) and not math.isfinite(x)):
            return "-"
        return format(x, fmt)

    return f


def _ci(pair: Any) -> str:
    if not pair or any(v is None for v in pair):
        return "-"
    return f"[{pair[0]:.3f}, {pair[1]:.3f}]"


def _p(x: Any) -> str:
    if not isinstance(x, int | float) or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.3g}" if x >= 1e-3 else f"{x:.1e}"


def render_html(results: dict[str, Any], figures: dict[str, str | None], final: list[dict[str, Any]]) -> str:
    from jinja2 import ChainableUndefined, Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("rewardsearch.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=ChainableUndefined,  # an optional key missing from an older results dict renders empty
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(f0=_num(".0f"), f1=_num(".1f"), f2=_num(".2f"), f3=_num(".3f"), f3s=_num("+.3f"), ci=_ci,
                       p=_p, arrow=arrow)
    leaderboard = sorted(results["status"]["candidates"], key=rank_key)
    return env.get_template("report.html.j2").render(r=results, fig=figures, final=final, leaderboard=leaderboard)

