"""Per-call latency of a sandboxed reward against the same function called in-process.

    PYTHONPATH=src python3 benchmarks/sandbox_latency.py [--calls 400] [--label after]

One call = one batch of 16 conversational completions of ~200 tokens (~900 characters each), scored by a
typical reward (regex extraction of the solution block, numeric comparison with gold, a format term). Both
sides get the same warm-up and the same inputs; the in-process baseline is measured in the same run, so the
two columns are comparable on a loaded machine. Writes one JSON file to `benchmarks/results/` with the
machine, date, versions, git commit, the sandbox level and median/p90/p99/mean for both sides.

With `--before REV` the runner of an older revision (copied out of git) is measured in the same run too.

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


def load_runner_from(rev: str, into: Path) -> type:
    """`SandboxedReward` as it was at git revision `rev` (runner.py + worker.py copied out), for a side-by-side run."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    for name in ("runner.py", "worker.py"):
        text = subprocess.run(["git", "show", f"{rev}:src/rewardsearch/sandbox/{name}"], cwd=root, check=True,
                              capture_output=True, text=True).stdout  # fmt: skip
        (into / name).write_text(text)
    spec = importlib.util.spec_from_file_location("rewardsearch_sandbox_runner_before", into / "runner.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SandboxedReward


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
    ap.add_argument("--before", default=None, metavar="REV",
                    help="also measure the runner of git revision REV (e.g. the pre-hardening b163ef0) side by side")
    ap.add_argument("--gap-ms", type=float, default=50.0,
                    help="idle time before each call in the 'spaced' series (the trainer generating the next batch)")
    ap.add_argument("--step-s", type=float, default=1.0,
                    help="GRPO step time the overhead is compared with (1 s: the tiny test model on CPU; real steps are longer)")
    args = ap.parse_args()

    kwargs = make_batch()
    scope: dict = {}
    exec(compile(REWARD, "<benchmark reward>", "exec"), scope)  # our own fixed source, the in-process baseline
    inproc = scope["reward"]
    cfg = SandboxConfig(**({"level": args.level} if args.level else {}))
    spec = RewardSpec(name="reward", source=REWARD)

    before_ms: list[float] = []
    if args.before:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            Before = load_runner_from(args.before, Path(tmp))
            with Before(spec, SandboxConfig()) as old:
                if old(**kwargs) != inproc(**kwargs):
                    raise SystemExit(f"the runner of {args.before} scores differently")
                timed(old, kwargs, args.warmup)
                before_ms = timed(old, kwargs, args.calls)

    with SandboxedReward(spec, cfg) as sandboxed:
        expected = inproc(**kwargs)
        got = sandboxed(**kwargs)
        if got != expected:
            raise SystemExit(f"sandboxed scores {got} differ from in-process scores {expected}")
        timed(inproc, kwargs, args.warmup)
        timed(sandboxed, kwargs, args.warmup)
        # interleave the sides in blocks so that machine load hits them alike
        base_ms: list[float] = []
        sand_ms: list[float] = []
        spaced_ms: list[float] = []
        block = 50
        for _ in range(max(1, args.calls // block)):
            base_ms += timed(inproc, kwargs, block)
            sand_ms += timed(sandboxed, kwargs, block)
            spaced_ms += timed(sandboxed, kwargs, block // 5, args.gap_ms / 1000.0)
        stats = sandboxed.stats
        level = stats.get("sandbox_level") or "process (pre-hardening seam)"
        mechanisms = stats.get("sandbox_mechanisms")
        failures = sandboxed.failures

    base, sand, spaced = summarize(base_ms), summarize(sand_ms), summarize(spaced_ms)
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
        "sandbox_mechanisms": mechanisms,
        "failures": failures,
        "in_process": base,
        "sandboxed": sand,
        "sandboxed_spaced": {**spaced, "gap_ms": args.gap_ms},
        "before": {**summarize(before_ms), "revision": args.before} if before_ms else None,
        "overhead_median_ms": sand["median_ms"] - base["median_ms"],
        "overhead_median_ms_spaced": spaced["median_ms"] - base["median_ms"],
        "grpo_step_s_assumed": args.step_s,
        "share_of_step_back_to_back": sand["median_ms"] / 1000.0 / args.step_s,
        "share_of_step_spaced": spaced["median_ms"] / 1000.0 / args.step_s,
        "notes": "sandboxed: calls back to back (each waits for the fresh child the previous call's exit "
        "triggers); sandboxed_spaced: gap_ms idle before each call, as between GRPO steps",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = args.out / f"sandbox_latency-{stamp}-{args.label}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"file": str(path), "level": level, "in_process": base, "sandboxed": sand,
                      "sandboxed_spaced": spaced, "before": result["before"]}, indent=1))


if __name__ == "__main__":
    main()
