"""Per-call time of the correctness checks (`task.check`): numeric, exact and math-verify, on the same pairs.

    PYTHONPATH=src python3 benchmarks/check_latency.py [--calls 300]

One call = one `checks.CHECKS[name](predicted, gold)`, as `evaluate.metrics` makes it for every item (twice:
strict and flexible). The pairs are what a math task's answer segments hold: plain numbers, LaTeX fractions
against decimals, a symbolic pair and a wrong answer; every check gets the same warm-up and the same pairs,
in the same run, so the ratios hold on a loaded machine. Writes one JSON file to `benchmarks/results/` (median
and mean milliseconds per pair and check, the machine, the math-verify version).

Not measured: math-verify's first import (about a second: sympy and its ANTLR parser), paid once a process.
"""

from __future__ import annotations

import argparse
import statistics
import time
from importlib import metadata

from _bench import write_result

from rewardsearch.tasks.checks import CHECKS

PAIRS: dict[str, tuple[str, str]] = {
    "integer": ("72", "72"),
    "frac_vs_decimal": ("\\frac{7}{2}", "3.5"),
    "wrong": ("71", "72"),
    "thousands": ("1,234", "1234"),
    "symbolic": ("x(x+2)", "x^2+2x"),  # numeric/exact read no equal number here: only math-verify's timing counts
}


def time_calls(check, predicted: str, gold: str, calls: int) -> list[float]:
    for _ in range(10):  # warm-up: math-verify caches parses, so later calls are the steady state
        check(predicted, gold)
    out = []
    for _ in range(calls):
        t0 = time.perf_counter()
        check(predicted, gold)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=300)
    args = ap.parse_args()
    rows = {}
    for pair_name, (predicted, gold) in PAIRS.items():
        for check_name, check in CHECKS.items():
            ms = time_calls(check, predicted, gold, args.calls)
            rows[f"{pair_name}/{check_name}"] = {
                "median_ms": round(statistics.median(ms), 4), "mean_ms": round(statistics.fmean(ms), 4),
                "result": check(predicted, gold),
            }  # fmt: skip
            print(f"{pair_name:16s} {check_name:12s} median {rows[f'{pair_name}/{check_name}']['median_ms']:8.4f} ms")
    write_result("check-latency", {"calls": args.calls, "math_verify": metadata.version("math-verify"),
                                   "rows": rows})  # fmt: skip


if __name__ == "__main__":
    main()
