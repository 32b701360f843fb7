"""Calibrate the screening protocol: base-rewards-only trials at several settings, side by side, vs the base model.

    python3 benchmarks/calibrate.py --model DIR --data-dir GSM8K_DIR --steps 60 \\
        --setting "A:screen.learning_rate=1e-5,screen.max_completion_length=512" --setting "B:..."
    # TRL's generate vs the fast path from one seed, and the fast path from two more (run-to-run noise):
    ... --setting "trl:screen.generation=trl" --setting "fast:screen.generation=fast" \
        --setting "fast-s1:screen.generation=fast,seed=1" --setting "fast-s2:screen.generation=fast,seed=2"

The base model is evaluated once on the same dev items (before); each setting is the baseline trial of a run
(`python -m rewardsearch.screen.trial`, fast rollouts) and is evaluated on dev at its end (after). Prints a
Markdown table (strict / flexible / extraction / completion length before and after, the training reward's
trend) and writes JSON with the curves.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import start_trial, step_times, summary, trial_outcome, trial_spec, wait_all, write_result  # noqa: E402


def _base_eval(model_dir: str, overrides: list[str]) -> dict:
    import torch

    from rewardsearch.config import load_config
    from rewardsearch.evaluate.generate import generate, load_for_eval
    from rewardsearch.evaluate.metrics import score
    from rewardsearch.tasks import load_task

    cfg = load_config(preset="gpu", overrides=overrides)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, tok = load_for_eval(model_dir, None, device, torch.bfloat16 if device == "cuda" else torch.float32)
    task = load_task(cfg.task, cfg.seed)
    problems = task.split("dev")[: cfg.eval.dev_size]
    t0 = time.time()
    info: dict = {}
    texts = generate(model, tok, [task.prompt(p) for p in problems], cfg.eval.max_new_tokens, cfg.eval.batch_size,
                     info=info)
    rec = score(task, problems, texts, "base", "dev", wall_s=time.time() - t0)
    lengths = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    del model
    return {"accuracy": rec.accuracy, "flex_accuracy": rec.flex_accuracy, "extraction_rate": rec.extraction_rate,
            "ci95": rec.ci95, "n": rec.n, "mean_tokens": statistics.fmean(lengths), "wall_s": rec.wall_s,
            "generation": info, "samples": texts[:2]}


def _trend(curve: list) -> tuple[float | None, float | None]:
    vals = [v for v in curve if v is not None]
    if len(vals) < 4:
        return None, None
    k = max(2, len(vals) // 5)
    return statistics.fmean(vals[:k]), statistics.fmean(vals[-k:])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--label", default=None)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--dev", type=int, default=256)
    ap.add_argument("--eval-tokens", type=int, default=512, help="new tokens of every dev evaluation")
    ap.add_argument("--setting", action="append", required=True, help="NAME:KEY=VALUE,KEY=VALUE")
    ap.add_argument("--work", default="/tmp/rs-calibrate")
    ap.add_argument("--timeout", type=float, default=540)
    ap.add_argument("--no-base", action="store_true", help="skip the base-model evaluation")
    args = ap.parse_args()
    label = args.label or Path(args.model).name
    common = ["task.name=gsm8k", *([f"task.data_dir={args.data_dir}"] if args.data_dir else []),
              f"eval.dev_size={args.dev}", "eval.batch_size=2048",
              f"eval.max_new_tokens={args.eval_tokens}", f"screen.steps={args.steps}"]
    settings = []
    seeds = []
    for s in args.setting:
        name, _, rest = s.partition(":")
        kvs = [kv for kv in rest.split(",") if kv]
        # `seed=N` is the trial's training seed (not a config key): run-to-run noise is the same setting twice.
        seed = [kv for kv in kvs if kv.startswith("seed=")]
        if seed and not seed[-1][5:].isdigit():
            raise SystemExit(f"--setting {s!r}: {seed[-1]!r}: expected seed=INT")
        seeds.append(int(seed[-1][5:]) if seed else 0)
        settings.append((name, [kv for kv in kvs if not kv.startswith("seed=")]))
    work = Path(args.work)
    dirs = [work / name for name, _ in settings]
    procs = [start_trial(trial_spec(d, args.model, common + ov, seed=seed))
             for d, (_, ov), seed in zip(dirs, settings, seeds, strict=True)]
    # The base evaluation runs while the trials start (it is one batched greedy pass).
    base = None if args.no_base else _base_eval(args.model, common)
    codes = wait_all(procs, args.timeout)
    rows = []
    for (name, ov), seed, d, code in zip(settings, seeds, dirs, codes, strict=True):
        o = trial_outcome(d)
        o.update(setting=name, overrides=ov, seed=seed, exit_code=code, step_time=summary(step_times(d)))
        rows.append(o)
    print("| setting | overrides | steps | dev strict | flex | extraction | length (tokens, train) | reward | "
          "s/step |\n|---|---|---|---|---|---|---|---|---|")
    if base:
        print(f"| base model | - | 0 | {base['accuracy']:.3f} | {base['flex_accuracy']:.3f} | "
              f"{base['extraction_rate']:.3f} | {base['mean_tokens']:.0f} (eval) | - | - |")
    for r in rows:
        dev = r.get("dev") or {}
        curves = r.get("curves") or {}
        l0, l1 = _trend(curves.get("completions/mean_length", []))
        r0, r1 = _trend(curves.get("reward", []))
        def fmt(v):
            return (f"{v:.2f}" if isinstance(v, float) else "-")
        print(f"| {r['setting']} | {' '.join(r['overrides'])} | {r.get('steps')} | {fmt(dev.get('accuracy'))} | "
              f"{fmt(dev.get('flex_accuracy'))} | {fmt(dev.get('extraction_rate'))} | {fmt(l0)} -> {fmt(l1)} | "
              f"{fmt(r0)} -> {fmt(r1)} | {fmt(r['step_time'].get('median_s'))} |")
        if r.get("log_tail"):
            print(r["log_tail"][-600:])
    write_result(f"calibration-{label}", {"model": label, "steps": args.steps, "dev_size": args.dev,
                                          "base": base, "settings": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
