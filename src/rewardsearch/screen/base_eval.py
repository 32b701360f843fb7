"""The base model's dev evaluation, no adapter, once per run: the "before" that every trial's "after" is read against.

    python -m rewardsearch.screen.base_eval SPEC.json

The spec is a `TrialSpec` (the executor writes one for every job); its rewards are ignored, nothing is trained.
The evaluation is `screen.trial.evaluate_split`, the very function that evaluates a trained adapter, so the two
sides differ only by the adapter: same prompts, same greedy decoding, same length budget, same scoring.
Writes `eval_<split>.json` in `spec.out_dir`, skipping a split already written (resume).
"""

from __future__ import annotations

import sys
from pathlib import Path

from rewardsearch.config import EvalConfig, ModelConfig, ScreenConfig, TaskConfig
from rewardsearch.screen.trial import TrialSpec, _atomic_write_json, evaluate_split, run_guarded


def run(spec: TrialSpec) -> int:
    from rewardsearch.evaluate.generate import load_for_eval
    from rewardsearch.models import pick_device, pick_dtype
    from rewardsearch.tasks import load_task

    out = Path(spec.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    todo = [s for s in spec.eval_splits if not (out / f"eval_{s}.json").is_file()]
    if not todo:
        return 0
    task = load_task(TaskConfig.model_validate(spec.task), spec.task_seed)
    device = pick_device(ScreenConfig.model_validate(spec.screen).device)
    dtype = pick_dtype(ModelConfig.model_validate(spec.model).dtype, device)
    model, tokenizer = load_for_eval(spec.model_dir, None, device, dtype)
    for split in todo:
        record = evaluate_split(model, tokenizer, task, split, EvalConfig.model_validate(spec.eval))
        _atomic_write_json(out / f"eval_{split}.json", record)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m rewardsearch.screen.base_eval SPEC.json", file=sys.stderr)
        return 2
    return run_guarded(Path(argv[0]), run, TrialSpec.read)


if __name__ == "__main__":
    raise SystemExit(main())
