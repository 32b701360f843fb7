"""Which GRPO steps went non-finite, against the padded sequence length of their training batch.

Rebuilds each trial's per-step batch from what it stored: TRL's own `RepeatSampler` with the trial's seed gives the
prompts of every step, the model's chat template their token counts, and TRL's logged `completions/max_length` the
completion width. A step's padded length is the longest prompt plus the longest completion. Before the skip guard
a trial's steps after its first non-finite one are NaN because its weights are, so only steps up to that one count.

    python3 scripts/nonfinite_lengths.py RUN_DIR [RUN_DIR ...] --tokenizer DIR [--gguf FILE] [--data-dir GSM8K]
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--tokenizer", required=True, help="a model directory (or the folder of --gguf)")
    ap.add_argument("--gguf", default=None, help="GGUF file name inside --tokenizer to read the tokenizer from")
    ap.add_argument("--data-dir", default=None, help="task.data_dir on this machine (the trial's own path otherwise)")
    ap.add_argument("--json", type=Path, default=None, help="write every step's row here")
    a = ap.parse_args()

    from transformers import AutoTokenizer
    from trl.trainer.grpo_trainer import RepeatSampler

    from rewardsearch.config import TaskConfig
    from rewardsearch.tasks import load_task

    tok = AutoTokenizer.from_pretrained(a.tokenizer, **({"gguf_file": a.gguf} if a.gguf else {}))
    lengths: dict[str, list[int]] = {}

    def prompt_lengths(spec: dict) -> list[int]:
        task_cfg = dict(spec["task"], **({"data_dir": a.data_dir} if a.data_dir else {}))
        key = json.dumps([task_cfg, spec["task_seed"]], sort_keys=True)
        if key not in lengths:
            task = load_task(TaskConfig.model_validate(task_cfg), spec["task_seed"])
            lengths[key] = [len(tok.apply_chat_template(task.prompt(p), add_generation_prompt=True, tokenize=True,
                                                        return_dict=True)["input_ids"]) for p in task.split("train")]
        return lengths[key]

    rows = []
    for run in a.runs:
        for train_path in sorted(run.glob("trials/*/train.json")) + sorted(run.glob("trials/*/lost-*/train.json")):
            trial_dir = train_path.parent if (train_path.parent / "spec.json").is_file() else train_path.parent.parent
            spec, train = json.loads((trial_dir / "spec.json").read_text()), json.loads(train_path.read_text())
            ng, pps = spec["screen"]["num_generations"], spec["screen"]["prompts_per_step"]
            plen = prompt_lengths(spec)
            order = list(RepeatSampler(plen, mini_repeat_count=ng, batch_size=pps, repeat_count=1, shuffle=True,
                                       seed=spec["seed"]))
            guarded = train.get("skipped_steps") is not None
            skipped = {s["step"] for s in train.get("skipped_steps") or []}
            for h in train.get("log_history") or []:
                if "grad_norm" not in h or "completions/max_length" not in h:
                    continue
                step = h["step"]
                batch = order[(step - 1) * pps * ng: step * pps * ng]
                length = max(plen[i] for i in batch) + int(h["completions/max_length"])
                bad = step in skipped or not math.isfinite(h["grad_norm"])
                rows.append({"trial": str(train_path.relative_to(run.parent)), "step": step, "length": length,
                             "mod128": length % 128, "nonfinite": bad})
                if bad and not guarded:
                    break
    bad = [r for r in rows if r["nonfinite"]]
    at64 = [r for r in rows if r["mod128"] == 64]
    print(f"{len(rows)} steps, {len(bad)} non-finite; padded length % 128 of the non-finite ones: "
          f"{dict(Counter(r['mod128'] for r in bad))}")
    print(f"steps with length % 128 == 64: {len(at64)}, of them non-finite: {sum(r['nonfinite'] for r in at64)}")
    for r in bad:
        print(f"  {r['trial']} step {r['step']}: length {r['length']}")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=0))


if __name__ == "__main__":
    main()
