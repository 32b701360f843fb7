"""Evaluation generation: transformers' `generate` vs our fast decoder, side by side in one process.

    python3 benchmarks/generation.py --model DIR [--adapter DIR] --data-dir GSM8K_DIR [--limit 1319]
    # also time other decoder settings, and where one decode step's GPU time goes (eager, torch.profiler):
    ... --variant "block64:key_block=64" --variant "chunked:prefill_tokens=65536" --profile 8

Both run greedy on the same merged model and the same prompts (GSM8K test by default, 256 new tokens); the fast
decoder is timed twice (the first call captures its CUDA graph). Prints a table and writes JSON with both
timings, their ratio, the share of items whose text is identical, and both accuracies.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import write_result  # noqa: E402

_DECODER_KEYS = ["key_block", "cache_align", "check_every"]
_CALL_KEYS = ["prompt_bucket", "prefill_tokens"]


def _parse_variant(text: str) -> tuple[str, dict, dict]:
    name, _, rest = text.partition(":")
    decoder, calls = {}, {}
    for kv in filter(None, rest.split(",")):
        key, _, value = kv.partition("=")
        if key not in _DECODER_KEYS + _CALL_KEYS or not value.isdigit():
            raise SystemExit(f"--variant {text!r}: {kv!r} is not KEY=INT with KEY in {_DECODER_KEYS + _CALL_KEYS}")
        (decoder if key in _DECODER_KEYS else calls)[key] = int(value)
    return name, decoder, calls


def _profile(model, tok, texts: list[str], steps: int) -> str:
    """The top CUDA kernels of `steps` eager decode steps (no graphs) at the benchmark's batch."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from rewardsearch.evaluate.decoder import FastDecoder
    from rewardsearch.evaluate.generate import eos_token_ids

    ids = tok(texts, add_special_tokens=False)["input_ids"]
    dec = FastDecoder(model, use_graphs=False, check_every=10**6)
    eos, pad = eos_token_ids(model, tok), tok.pad_token_id
    dec.generate(ids, 3, eos, pad, prompt_bucket=1)   # warm-up: allocations, cuBLAS handles
    timings: dict = {}
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        dec.generate(ids, steps + 1, eos, pad, prompt_bucket=1, timings=timings)
        torch.cuda.synchronize()
    table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=60)
    return f"eager: prefill {timings['prefill_s']:.3f} s, {steps} decode steps {timings['decode_s']:.3f} s\n{table}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--adapter", default=None)
    ap.add_argument("--label", default=None, help="name of the model in the result file")
    ap.add_argument("--task", default="gsm8k")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=1319)
    ap.add_argument("--max-new", type=int, default=256)
    ap.add_argument("--hf-batch", type=int, default=1319, help="generate's batch (its best measured: all at once)")
    ap.add_argument("--fast-batch", type=int, default=4096)
    ap.add_argument("--hf-batch2", type=int, default=0,
                    help="also run generate at this batch: how often bf16 generate agrees with itself (0 = skip)")
    ap.add_argument("--variant", action="append", default=[],
                    help="NAME:KEY=VALUE,... decoder settings timed beside the default "
                         f"(keys: {', '.join(_DECODER_KEYS + _CALL_KEYS)})")
    ap.add_argument("--profile", type=int, default=0, help="profile this many eager decode steps (0 = skip)")
    args = ap.parse_args()
    variants = [_parse_variant(v) for v in args.variant]

    import torch

    from rewardsearch.config import TaskConfig
    from rewardsearch.evaluate.generate import _generate_fast, _generate_hf, load_for_eval
    from rewardsearch.evaluate.metrics import score
    from rewardsearch.tasks import load_task

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model, tok = load_for_eval(args.model, args.adapter, device, dtype)
    task = load_task(TaskConfig(name=args.task, data_dir=args.data_dir), seed=0)
    problems = task.split(args.split)[: args.limit]
    texts = [tok.apply_chat_template(task.prompt(p), add_generation_prompt=True, tokenize=False) for p in problems]

    def timed(fn, *a):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn(*a)
        if device == "cuda":
            torch.cuda.synchronize()
        return out, time.perf_counter() - t0

    hf, t_hf = timed(_generate_hf, model, tok, texts, args.max_new, args.hf_batch, None)
    fast1, t_fast1 = timed(_generate_fast, model, tok, texts, args.max_new, args.fast_batch, None)
    default_timing: list[dict] = []   # two synchronisations per batch: no measurable cost at this size
    fast, t_fast = timed(_generate_fast, model, tok, texts, args.max_new, args.fast_batch, None, None, None,
                         default_timing)
    same = [a == b for a, b in zip(hf, fast, strict=True)]
    rows_v = []
    for name, decoder, calls in variants:
        # Each call builds its decoder and captures its graphs, as an evaluation does: capture is part of the time.
        timing: list[dict] = []
        out_v, t_v = timed(_generate_fast, model, tok, texts, args.max_new, args.fast_batch, None, decoder, calls,
                           timing)
        s_v = score(task, problems, out_v, name, args.split)
        agree = sum(a == b for a, b in zip(hf, out_v, strict=True))
        rows_v.append({"name": name, "decoder": decoder, "calls": calls, "wall_s": t_v, "timings": timing,
                       "accuracy": s_v.accuracy, "flex_accuracy": s_v.flex_accuracy, "identical_items": agree,
                       "identical_share": agree / len(hf)})
        print(f"  variant {name:22s} {t_v:8.2f} s  strict {s_v.accuracy:.3f} flex {s_v.flex_accuracy:.3f}  "
              f"identical {agree}/{len(hf)}  {timing}", flush=True)
    profile_text = _profile(model, tok, texts, args.profile) if args.profile and device == "cuda" else None
    if profile_text:
        print(profile_text)
    hf_self = None
    if args.hf_batch2:
        # The noise floor of the 99% target: the same greedy generate, only batched otherwise (other bf16 shapes).
        hf2, t_hf2 = timed(_generate_hf, model, tok, texts, args.max_new, args.hf_batch2, None)
        agree = sum(a == b for a, b in zip(hf, hf2, strict=True))
        s_hf2 = score(task, problems, hf2, "hf2", args.split)
        hf_self = {"batch": args.hf_batch2, "wall_s": t_hf2, "identical_items": agree,
                   "identical_share": agree / len(hf), "accuracy": s_hf2.accuracy,
                   "flex_accuracy": s_hf2.flex_accuracy}
    s_hf = score(task, problems, hf, "hf", args.split)
    s_fast = score(task, problems, fast, "fast", args.split)
    n_tok = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in fast]
    differing = [i for i, ok in enumerate(same) if not ok]
    rows = [("transformers generate", t_hf, s_hf), ("fast decoder (capture incl.)", t_fast1, None),
            ("fast decoder", t_fast, s_fast)]
    print(f"{len(problems)} prompts x {args.max_new} new tokens, greedy, {args.label or args.model}")
    for name, t, s in rows:
        acc = f"strict {s.accuracy:.3f} flex {s.flex_accuracy:.3f}" if s else ""
        print(f"  {name:30s} {t:8.2f} s  {acc}")
    print(f"  speed-up {t_hf / t_fast:.1f}x; identical text {sum(same)}/{len(same)}; "
          f"deterministic fast {fast1 == fast}")
    if hf_self:
        print(f"  generate at batch {args.hf_batch} vs at batch {args.hf_batch2}: identical text "
              f"{hf_self['identical_items']}/{len(same)}")
    write_result(f"generation-{args.label or Path(args.model).name}", {
        "model": args.label or args.model, "adapter": args.adapter, "task": args.task, "split": args.split,
        "prompts": len(problems), "max_new_tokens": args.max_new, "dtype": str(dtype), "device": device,
        "baseline": {"what": "transformers generate, greedy, left-padded", "batch": args.hf_batch, "wall_s": t_hf,
                     "accuracy": s_hf.accuracy, "flex_accuracy": s_hf.flex_accuracy},
        "fast": {"what": "rewardsearch FastDecoder (static cache + CUDA graph)", "batch": args.fast_batch,
                 "wall_s": t_fast, "wall_s_first_call": t_fast1, "accuracy": s_fast.accuracy,
                 "flex_accuracy": s_fast.flex_accuracy, "mean_new_tokens": sum(n_tok) / max(1, len(n_tok)),
                 "timings": default_timing},
        "variants": rows_v, "profile": profile_text,
        "speedup": t_hf / t_fast,
        "identical_items": sum(same), "identical_share": sum(same) / len(same),
        "fast_deterministic": fast1 == fast,
        "baseline_self_agreement": hf_self,
        "accuracy_diff_pp": 100 * (s_fast.accuracy - s_hf.accuracy),
        "first_differences": [{"item": problems[i].id, "hf": hf[i][:400], "fast": fast[i][:400]}
                              for i in differing[:3]],
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
