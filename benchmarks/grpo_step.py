"""GRPO step time: TRL's default generation vs our fast rollouts, as real trials of the project.

    # baseline and ours one after the other (each alone on the GPU), 16 completions x 256 tokens, LoRA r16:
    python3 benchmarks/grpo_step.py --model DIR --data-dir GSM8K_DIR --arms trl:6,fast:20
    # the same arms side by side from one seed (curves and dev accuracy to compare; timings then shared):
    python3 benchmarks/grpo_step.py --model DIR --data-dir GSM8K_DIR --arms trl:30,fast:30 --together
    # aggregate throughput with 1, 2, 4 fast trials sharing one GPU:
    python3 benchmarks/grpo_step.py --model DIR --data-dir GSM8K_DIR --per-gpu 1,2,4 --steps 12

Each arm is `python -m rewardsearch.screen.trial` with base rewards only (`fast`: merged rollout weights, `fast-live`:
the live PEFT modules; `trl`: TRL's generate); step times
come from its steps.log (the first two steps, warm-up and graph capture, are left out of the median).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import start_trial, step_times, summary, trial_outcome, trial_spec, wait_all, write_result  # noqa: E402

# arm name -> (screen.generation, screen.rollout_weights)
_ARMS = {"trl": ("trl", "merged"), "fast": ("fast", "merged"), "fast-live": ("fast", "live")}


def _overrides(args: argparse.Namespace, backend: str, steps: int) -> list[str]:
    if backend not in _ARMS:
        raise SystemExit(f"arm {backend!r}: expected one of {sorted(_ARMS)}")
    generation, weights = _ARMS[backend]
    return [
        f"task.name={args.task}", *( [f"task.data_dir={args.data_dir}"] if args.data_dir else []),
        f"screen.steps={steps}", f"screen.generation={generation}", f"screen.rollout_weights={weights}",
        "screen.checkpoint_every=0",
        f"screen.num_generations={args.gens}", f"screen.prompts_per_step={args.prompts}",
        f"screen.max_completion_length={args.completion_len}", f"screen.learning_rate={args.lr}",
        f"screen.beta={args.beta}", f"eval.dev_size={args.dev}", f"eval.max_new_tokens={args.eval_tokens}",
        "eval.batch_size=2048", *args.set,
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--label", default=None)
    ap.add_argument("--task", default="gsm8k")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--arms", default="trl:6,fast:20",
                    help="arm:steps, comma separated; arms: trl, fast (merged rollout weights), fast-live")
    ap.add_argument("--together", action="store_true", help="start all arms at once")
    ap.add_argument("--per-gpu", default=None, help="trial counts to run side by side with the fast path")
    ap.add_argument("--steps", type=int, default=12, help="--per-gpu: steps per trial")
    ap.add_argument("--gens", type=int, default=8)
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--completion-len", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--beta", type=float, default=0.0)
    ap.add_argument("--dev", type=int, default=16, help="dev items each trial evaluates at its end")
    ap.add_argument("--eval-tokens", type=int, default=256)
    ap.add_argument("--work", default="/tmp/rs-bench")
    ap.add_argument("--save-adapter", default=None, help="copy the last fast arm's adapter here")
    ap.add_argument("--timeout", type=float, default=560)
    ap.add_argument("--set", nargs="*", default=[], help="extra KEY=VALUE overrides for every arm")
    args = ap.parse_args()
    label = args.label or Path(args.model).name
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)

    if args.per_gpu:
        rows = []
        for n in [int(x) for x in args.per_gpu.split(",")]:
            dirs = [work / f"pergpu{n}-{i}" for i in range(n)]
            procs = [start_trial(trial_spec(d, args.model, _overrides(args, "fast", args.steps), seed=i))
                     for i, d in enumerate(dirs)]
            codes = wait_all(procs, args.timeout)
            per = [summary(step_times(d)) for d in dirs]
            medians = [p["median_s"] for p in per if "median_s" in p]
            agg = sum(1.0 / m for m in medians) if medians else 0.0
            rows.append({"trials": n, "exit_codes": codes, "per_trial": per, "aggregate_steps_per_s": agg})
            print(f"  {n} trial(s): median step {', '.join(f'{m:.2f}' for m in medians)} s; "
                  f"aggregate {agg:.2f} steps/s", flush=True)
        base = rows[0]["aggregate_steps_per_s"] or 1.0
        for r in rows:
            r["vs_one_trial"] = r["aggregate_steps_per_s"] / base
        write_result(f"trials-per-gpu-{label}", {"model": label, "steps": args.steps,
                                                  "completions": args.gens * args.prompts,
                                                  "max_completion_length": args.completion_len, "rows": rows})
        return 0

    arms = [(a.split(":")[0], int(a.split(":")[1])) for a in args.arms.split(",")]
    dirs = [work / f"{b}-{i}" for i, (b, _) in enumerate(arms)]
    specs = [trial_spec(d, args.model, _overrides(args, b, s)) for d, (b, s) in zip(dirs, arms, strict=True)]
    codes: list[int | None] = []
    if args.together:
        codes = wait_all([start_trial(s) for s in specs], args.timeout)
    else:
        for s in specs:
            codes += wait_all([start_trial(s)], args.timeout)
    result = {"model": label, "together": args.together, "completions": args.gens * args.prompts,
              "max_completion_length": args.completion_len, "learning_rate": args.lr, "beta": args.beta,
              "arms": []}
    for (backend, steps), d, code in zip(arms, dirs, codes, strict=True):
        t = summary(step_times(d))
        arm = {"backend": backend, "steps": steps, "exit_code": code, "step_time": t, **trial_outcome(d)}
        result["arms"].append(arm)
        dev = arm.get("dev") or {}
        print(f"  {backend:5s} {steps:4d} steps  median step {t.get('median_s', float('nan')):.2f} s  "
              f"dev strict {dev.get('accuracy')} flex {dev.get('flex_accuracy')}  exit {code}", flush=True)
        if arm.get("log_tail"):
            print(arm["log_tail"][-800:])
    med = {a["backend"]: a["step_time"].get("median_s") for a in result["arms"]}
    for arm in ("fast", "fast-live"):
        if med.get("trl") and med.get(arm):
            result["speedup" if arm == "fast" else f"speedup_{arm}"] = med["trl"] / med[arm]
            print(f"  speed-up {arm} {med['trl'] / med[arm]:.1f}x")
    if args.save_adapter:
        for (backend, _), d in zip(arms, dirs, strict=True):
            if backend.startswith("fast") and (d / "adapter").is_dir():
                shutil.rmtree(args.save_adapter, ignore_errors=True)
                shutil.copytree(d / "adapter", args.save_adapter)
    write_result(f"grpo-step-{label}{'-together' if args.together else ''}", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
