"""Per-call latency of a sandboxed reward against the same function called in-process.

    PYTHONPATH=src python3 benchmarks/sandbox_latency.py [--calls 400] [--label after]

One call = one batch of 16 conversational completions of ~200 tokens (~900 characters each), scored by a
typical reward (regex extraction of the solution block, numeric comparison with gold, a format term). Both
sides get the same warm-up and the same inputs; the in-process baseline is measured in the same run, so the
two columns are comparable on a loaded machine. Writes one JSON file to `benchmarks/results/` with the
machine, date, versions, git commit, the sandbox level and median/p90/p99/mean for both sides.

Not measured: worker start-up (paid once per reward and trial) and the dry-run probe suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rewardsearch.config import SandboxConfig
from rewardsearch.rewards.spec import RewardSpec
from rewardsearch.sandbox import SandboxedReward

REWARD = r'''
import re

SOLUTION = re.compile(r"<solution>(.*?)</solution>", re.DOTALL)
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
LAYOUT = re.compile(r"^\s*<thinking>.*?</thinking>\s*<solution>.*?</solution>\s*$", re.DOTALL)


def last_number(text):
    found = NUMBER.findall(text.replace(",", ""))
    return float(found[-1]) if found else None


def reward(prompts, completions, answer, **kwargs):
    scores = []
    for completion, gold in zip(completions, answer):
        text = completion[0]["content"]
        m = SOLUTION.search(text)
        predicted = last_number(m.group(1)) if m else None
        score = 0.5 if LAYOUT.match(text) else 0.0
        if predicted is not None and abs(predicted - float(gold)) < 1e-6:
            score += 2.0
        scores.append(score)
    return scores
'''

BATCH = 16
WORDS_PER_COMPLETION = 150  # ~200 tokens of English with numbers


def make_batch() -> dict:
    step = "First we add 12 and 30 to get 42, then we check the result against the question once more. "
    body = (step * (WORDS_PER_COMPLETION // len(step.split()) + 1)).split()[:WORDS_PER_COMPLETION]
    texts = [f"<thinking>{' '.join(body)}</thinking><solution>{40 + i % 4}</solution>" for i in range(BATCH)]
    return {
        "prompts": [[{"role": "user", "content": "What is 12 + 30?"}] for _ in texts],
        "completions": [[{"role": "assistant", "content": t}] for t in texts],
        "answer": ["42"] * BATCH,
    }


def summarize(ms: list[float]) -> dict:
    s = sorted(ms)
    return {
        "calls": len(s),
        "median_ms": statistics.median(s),
        "p90_ms": s[int(0.90 * (len(s) - 1))],
        "p99_ms": s[int(0.99 * (len(s) - 1))],
        "mean_ms": statistics.fmean(s),
        "max_ms": s[-1],
    }


def timed(fn, kwargs: dict, calls: int, gap_s: float = 0.0) -> list[float]:
    out = []
    for _ in range(calls):
        if gap_s:
            time.sleep(gap_s)  # the trainer generating the next batch
        t0 = time.perf_counter()
        fn(**kwargs)
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=Path(__file__).parent
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--label", default="run")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("results"))
    ap.add_argument("--level", default=None, help="sandbox.level to use (default: the config default)")
    args = ap.parse_args()

    kwargs = make_batch()
    scope: dict = {}
    exec(compile(REWARD, "<benchmark reward>", "exec"), scope)  # our own fixed source, the in-process baseline
    inproc = scope["reward"]
    cfg = SandboxConfig(**({"level": args.level} if args.level else {}))
    spec = RewardSpec(name="reward", source=REWARD)

    with SandboxedReward(spec, cfg) as sandboxed:
        expected = inproc(**kwargs)
        got = sandboxed(**kwargs)
        if got != expected:
            raise SystemExit(f"sandboxed scores {got} differ from in-process scores {expected}")
        timed(inproc, kwargs, args.warmup)
        timed(sandboxed, kwargs, args.warmup)
        # interleave the two sides in blocks so that machine load hits both alike
        base_ms: list[float] = []
        sand_ms: list[float] = []
        block = 50
        for _ in range(max(1, args.calls // block)):
            base_ms += timed(inproc, kwargs, block)
            sand_ms += timed(sandboxed, kwargs, block)
        stats = sandboxed.stats
        level = stats.get("sandbox_level", "process (pre-hardening seam)")
        failures = sandboxed.failures

    base, sand = summarize(base_ms), summarize(sand_ms)
    chars = sum(len(c[0]["content"]) for c in kwargs["completions"]) / BATCH
    result = {
        "benchmark": "sandbox_latency",
        "label": args.label,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "machine": {
            "platform": platform.platform(),
            "machine": platform.machine(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "loadavg_1m": os.getloadavg()[0],
        },
        "versions": {"python": sys.version.split()[0], "implementation": platform.python_implementation()},
        "workload": {"batch": BATCH, "chars_per_completion": chars, "reward": "regex solution + number + layout"},
        "sandbox_level": level,
        "failures": failures,
        "in_process": base,
        "sandboxed": sand,
        "overhead_median_ms": sand["median_ms"] - base["median_ms"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = args.out / f"sandbox_latency-{stamp}-{args.label}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"file": str(path), "level": level, "in_process": base, "sandboxed": sand}, indent=1))


if __name__ == "__main__":
    main()
