"""The pre-screen: judge a candidate reward on the base policy's own samples, before any GRPO trial.

GRPO learns from the spread of rewards inside a group of completions of one prompt. So, once per run, the base
model samples a pool the way a rollout does (`prescreen.samples` completions for each of the first
`prescreen.prompts` train prompts, at `screen.temperature`, `screen.max_completion_length` tokens) and the pool is
cached with each completion's correctness in `DIR/prescreen/pool.json`:

    python -m rewardsearch.screen.prescreen POOLSPEC.json      (the executor runs it: the one model-using step)

Every candidate that passed the static check, the probe and de-duplication is then scored on the pool in its
sandbox worker (`SandboxedReward`, one call per group, as TRL calls it with the dataset's `answer` and `item_id`),
with no model and no GPU, and rejected (`prescreen_check`) when:

- it gives (almost) no within-group variance: fewer than `prescreen.min_signal_groups` of the groups get any
  spread of its scores, so GRPO would get no signal from it (it adds nothing to the base rewards);
- it ranks wrong completions above right ones on average: over the groups holding both, its per-group AUC (the
  chance a right completion outscores a wrong one, ties half) is below 0.5 on average and a one-sided sign test
  over those groups says so at `prescreen.alpha`. Right means flexibly correct (the last number equals the gold
  answer): the base policies measured here almost never write the strict layout (SmolLM2 0/128; Qwen2.5-Coder
  0.000 strict on GSM8K), so strict correctness would leave no group with both outcomes;
- it fails in the sandbox on the pool (quarantined, or no score at all).
A pool with no group holding both outcomes cannot test the second rule: the statistics say so and it passes.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rewardsearch.config import PrescreenConfig, SandboxConfig

POOL_FILE = "pool.json"
# Spread below this share of the scores' scale is float noise (0.1 + 0.2 vs 0.3), not a signal GRPO could use.
SPREAD_TOL = 1e-6


@dataclass
class PoolSpec:
    out_dir: str
    model_dir: str
    seed: int
    task_seed: int
    task: dict[str, Any]
    model: dict[str, Any]
    screen: dict[str, Any]
    prescreen: dict[str, Any]

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def read(cls, path: Path) -> PoolSpec:
        return cls(**json.loads(path.read_text()))


def sample_pool(spec: PoolSpec) -> dict[str, Any]:
    """Sample the pool with the base model (no adapter) and score each completion's correctness."""
    import torch

    from rewardsearch.config import ModelConfig, ScreenConfig, TaskConfig
    from rewardsearch.evaluate.generate import load_for_eval
    from rewardsearch.models import pick_device, pick_dtype
    from rewardsearch.tasks import load_task

    pcfg = PrescreenConfig.model_validate(spec.prescreen)
    screen = ScreenConfig.model_validate(spec.screen)
    task = load_task(TaskConfig.model_validate(spec.task), spec.task_seed)
    device = pick_device(screen.device)
    model, tok = load_for_eval(spec.model_dir, None, device, pick_dtype(ModelConfig.model_validate(spec.model).dtype,
                                                                        device))
    problems = task.split("train")[: pcfg.prompts]
    max_new = pcfg.max_new_tokens or screen.max_completion_length
    torch.manual_seed(spec.seed)
    t0 = time.time()
    comps_all = _sample(model, tok, [task.prompt(p) for p in problems], max_new, pcfg, screen.temperature)
    groups = []
    for p, comps in zip(problems, comps_all, strict=True):
        groups.append({
            "item_id": p.id, "prompt": task.prompt(p), "answer": p.answer, "completions": comps,
            "strict": [int(task.is_correct(task.extract_strict(c), p.answer)) for c in comps],
            "flexible": [int(task.is_correct(task.extract_flexible(c), p.answer)) for c in comps],
        })
    n = sum(len(g["completions"]) for g in groups)
    return {
        "groups": groups, "wall_s": time.time() - t0, "device": device, "max_new_tokens": max_new,
        "temperature": screen.temperature, "samples": pcfg.samples,
        "strict_rate": sum(sum(g["strict"]) for g in groups) / n if n else 0.0,
        "flexible_rate": sum(sum(g["flexible"]) for g in groups) / n if n else 0.0,
        "mixed_groups": sum(0 < sum(g["flexible"]) < len(g["flexible"]) for g in groups),
    }


def _sample(model: Any, tok: Any, prompts: list[Any], max_new: int, pcfg: PrescreenConfig,
            temperature: float) -> list[list[str]]:
    """`pcfg.samples` completions per chat prompt, sampled as a GRPO rollout samples (TRL's defaults: plain
    temperature sampling, no top-k/top-p cut): through the fast decoder on CUDA, else `generate`."""
    import torch

    from rewardsearch.evaluate.decoder import FastDecoder, Sampling
    from rewardsearch.evaluate.generate import choose_backend, eos_token_ids

    k = pcfg.samples
    texts = [tok.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in prompts]
    eos = eos_token_ids(model, tok)
    if choose_backend("auto", model)[0] == "fast":
        ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
        rows = FastDecoder(model).generate([i for i in ids for _ in range(k)], max_new, eos, tok.pad_token_id,
                                           sampling=Sampling(greedy=False, temperature=temperature), prompt_bucket=1)
        flat = tok.batch_decode(rows, skip_special_tokens=True)
        return [flat[i * k : (i + 1) * k] for i in range(len(prompts))]
    out: list[list[str]] = []
    old_side, tok.padding_side = tok.padding_side, "left"   # new tokens follow the prompt directly
    try:
        for start in range(0, len(texts), pcfg.batch_size):
            batch = texts[start : start + pcfg.batch_size]
            enc = tok(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            with torch.inference_mode():
                gen = model.generate(**enc, max_new_tokens=max_new, do_sample=True, temperature=temperature,
                                     top_p=1.0, top_k=0, num_return_sequences=k,
                                     eos_token_id=eos, pad_token_id=tok.pad_token_id)
            flat = tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            out.extend(flat[i * k : (i + 1) * k] for i in range(len(batch)))
    finally:
        tok.padding_side = old_side
    return out


def _auc(right: list[float], wrong: list[float]) -> float:
    wins = sum((r > w) + 0.5 * (r == w) for r in right for w in wrong)
    return wins / (len(right) * len(wrong))


def pool_statistics(scores: list[list[float | None]], groups: list[dict[str, Any]]) -> dict[str, Any]:
    """Within-group spread and right-vs-wrong ordering of one reward's scores on the pool (see the module doc)."""
    from scipy.stats import binomtest

    spread = scored = 0
    aucs: list[float] = []
    for s, g in zip(scores, groups, strict=True):
        vals = [(float(x), ok) for x, ok in zip(s, g["flexible"], strict=True) if x is not None and math.isfinite(x)]
        if len(vals) < 2:
            continue
        scored += 1
        xs = [v for v, _ in vals]
        if max(xs) - min(xs) > SPREAD_TOL * max(1.0, max(abs(v) for v in xs)):
            spread += 1
        right, wrong = [v for v, ok in vals if ok], [v for v, ok in vals if not ok]
        if right and wrong:
            aucs.append(_auc(right, wrong))
    below, above = sum(a < 0.5 for a in aucs), sum(a > 0.5 for a in aucs)
    p = float(binomtest(below, below + above, 0.5, alternative="greater").pvalue) if below + above else 1.0
    return {
        "groups": len(groups), "scored_groups": scored, "signal_groups": spread,
        "signal_fraction": spread / len(groups) if groups else 0.0,
        "mixed_groups": len(aucs), "mean_auc": sum(aucs) / len(aucs) if aucs else None,
        "groups_wrong_above_right": below, "groups_right_above_wrong": above, "p_wrong_above_right": p,
    }


def score_on_pool(spec: Any, pool: dict[str, Any], scfg: SandboxConfig) -> tuple[list[list[float | None]], str | None]:
    """The candidate's scores on every group, from its sandbox worker; and the failure, if it kept failing."""
    from rewardsearch.sandbox.runner import SandboxedReward

    out: list[list[float | None]] = []
    with SandboxedReward(spec, scfg) as reward:
        for g in pool["groups"]:
            k = len(g["completions"])
            out.append(reward(
                [g["prompt"]] * k, [[{"role": "assistant", "content": c}] for c in g["completions"]],
                answer=[g["answer"]] * k, item_id=[g["item_id"]] * k,
            ))
            if reward.quarantined:
                return out, f"quarantined after {reward.failures} failed calls: {reward.last_error}"
        if not any(x is not None for s in out for x in s):
            return out, f"no score on any of the {len(out)} groups" + (f" ({reward.last_error})"
                                                                        if reward.last_error else "")
    return out, None


WOULD_REJECT = "prescreen_would_reject"   # the flag of a verdict recorded but not applied (prescreen.reject=false)


def prescreen_check(spec: Any, pool: dict[str, Any], pcfg: PrescreenConfig, scfg: SandboxConfig) -> Any:
    """The `prescreen` CheckResult of one candidate on the pool: ok, or rejected with the reason and statistics.

    With `prescreen.reject=false` a rejection is recorded, not applied: the result is ok, flagged `WOULD_REJECT`,
    with the reason in `details["would_reject"]`, so the candidate trains and the verdict can be checked against it.
    """
    from rewardsearch.sandbox import CheckResult

    res = _verdict(spec, pool, pcfg, scfg)
    if res.ok or pcfg.reject:
        return res
    return CheckResult("prescreen", True, None, flags=[WOULD_REJECT],
                       details={**res.details, "would_reject": res.reason})


def _verdict(spec: Any, pool: dict[str, Any], pcfg: PrescreenConfig, scfg: SandboxConfig) -> Any:
    from rewardsearch.sandbox import CheckResult

    t0 = time.time()
    scores, failure = score_on_pool(spec, pool, scfg)
    stats = pool_statistics(scores, pool["groups"]) if failure is None else {}
    stats["wall_s"] = time.time() - t0
    if failure is not None:
        return CheckResult("prescreen", False, f"failed on the base-policy pool: {failure}", details=stats)
    if stats["signal_fraction"] < pcfg.min_signal_groups:
        return CheckResult(
            "prescreen", False,
            f"no within-group variance: {stats['signal_groups']} of {stats['groups']} groups of base-policy samples "
            f"get any spread of its scores (< {pcfg.min_signal_groups:.0%}), so GRPO would get no signal from it",
            details=stats,
        )
    if stats["mean_auc"] is not None and stats["mean_auc"] < 0.5 and stats["p_wrong_above_right"] < pcfg.alpha:
        return CheckResult(
            "prescreen", False,
            f"ranks wrong completions above right ones: mean within-group AUC {stats['mean_auc']:.2f} over "
            f"{stats['mixed_groups']} groups holding both (wrong above right in {stats['groups_wrong_above_right']}, "
            f"sign test p={stats['p_wrong_above_right']:.3g} < {pcfg.alpha})",
            details=stats,
        )
    return CheckResult("prescreen", True, None, details=stats)


def run(spec: PoolSpec) -> int:
    out = Path(spec.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if (out / POOL_FILE).is_file():
        return 0
    pool = sample_pool(spec)
    tmp = out / (POOL_FILE + ".tmp")
    tmp.write_text(json.dumps(pool))
    tmp.replace(out / POOL_FILE)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m rewardsearch.screen.prescreen POOLSPEC.json", file=sys.stderr)
        return 2
    from rewardsearch.screen.trial import run_guarded

    return run_guarded(Path(argv[0]), run, PoolSpec.read)


if __name__ == "__main__":
    raise SystemExit(main())
