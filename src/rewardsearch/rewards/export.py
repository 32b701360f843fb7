"""Export the best rewards (or reward sets) of a run as standalone Python modules for TRL, verl and OpenRLHF.

    rewardsearch export DIR --format trl|verl|openrlhf [--top K] [--out PATH]

Each exported module depends on nothing outside the standard library (the OpenRLHF form returns torch tensors
when torch is importable, as OpenRLHF expects, and lists otherwise). It holds, in this order:

1. the number extraction and answer formats of `rewardsearch.tasks.answers` and the three base rewards of
   `rewardsearch.rewards.base` (every candidate was trained beside them), copied as source, then
   `ANSWER_FORMAT`, the run's task's answer format (a built-in by name; a task's own rebuilt from its fields
   and its `segment_source`), which the base rewards are instantiated for, as the trials did;
2. for reward sets, the per-group z-score of `rewardsearch.rewards.normalize`, copied as source;
3. each member's own code, as its source text run into a namespace of its own at import (members trained in
   separate sandbox workers; their helper names such as `_text` would collide in one namespace);
4. the engine's entry point:
   - `trl`: `REWARD_FUNCS` and `REWARD_WEIGHTS` for `GRPOTrainer(reward_funcs=...)` and
     `GRPOConfig(reward_weights=...)`: exactly what the trial trained with (z-score wrappers included);
   - `verl`: `compute_score(data_source, solution_str, ground_truth, extra_info=None) -> float`;
   - `openrlhf`: `reward_func(queries, prompts, labels) -> {"rewards", "scores", "extra_logs"}`.
   verl and OpenRLHF score completions one at a time or in batches without GRPO groups, so a z-scored set
   becomes a static weighted sum there: member i gets weight w_i / s_i, s_i its mean within-group std during
   training (GRPO subtracts the group mean itself). The manifest says so.

Next to each module, `<name>.manifest.json`: members with source hashes and the checks they passed, weights,
normalization, metrics (dev/test), the run's config hash, and the module's own sha256.
Exported code is the candidates' code: importing a module runs it. Review it (or run it sandboxed) first.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import time
from importlib import resources
from pathlib import Path
from typing import Any

from rewardsearch.store import ArmRecord, Store
from rewardsearch.tasks.answers import FORMATS as ANSWER_FORMATS
from rewardsearch.tasks.answers import TAGS, AnswerFormat

FORMATS = ("trl", "verl", "openrlhf")


class ExportError(ValueError):
    """Nothing to export, or an output path that cannot hold what was asked; the message is for the user."""


# -- what to export ------------------------------------------------------------------------------------------


def _unit_from_arm(store: Store, arm: ArmRecord, seeds: list[int], split: str) -> dict[str, Any]:
    from rewardsearch.search.finals import arm_trial_id

    metrics: dict[str, Any] = {}
    scales: dict[str, float | None] = {}
    for sp in ("dev", "test"):
        per_seed = {s: e.accuracy for s in seeds if (e := store.eval(arm_trial_id(arm, s), sp)) is not None}
        metrics[sp] = {"per_seed": per_seed, "mean": sum(per_seed.values()) / len(per_seed) if per_seed else None}
    for s in seeds:  # the raw within-group std each member had while training (first seed that recorded it)
        t = store.trial(arm_trial_id(arm, s))
        for name, summary in ((t.metrics.get("reward_norm") or {}) if t else {}).items():
            scales.setdefault(name, summary.get("group_std"))
    return {
        "label": arm.label, "kind": arm.kind, "strategy": arm.strategy, "aliases": arm.aliases,
        "specs": arm.specs, "normalize": arm.normalize, "metrics": metrics, "scales": scales,
        "score": metrics[split]["mean"], "source": f"arm {arm.id}",
    }


def _unit_from_candidate(store: Store, row: dict[str, Any], seed: int) -> dict[str, Any]:
    from rewardsearch.search.ranking import trial_id_for

    c = store.candidate(row["id"])
    assert c is not None
    tid = trial_id_for(row["id"], seed)
    metrics = {}
    for sp in ("dev", "test"):
        e = store.eval(tid, sp)
        metrics[sp] = None if e is None else {
            "accuracy": e.accuracy, "ci95": list(e.ci95), "extraction_rate": e.extraction_rate, "n": e.n,
        }
    return {
        "label": c["name"], "kind": "single", "strategy": "search", "aliases": [], "specs": [Store.spec_of(c).to_dict()],
        "normalize": "none", "metrics": metrics, "scales": {}, "score": row["dev"]["accuracy"], "source": f"trial {tid}",
    }


def choose(store: Store, top: int) -> list[dict[str, Any]]:
    """The `top` best exportable reward sets: final-stage arms (not controls) by their selection-split mean over
    seeds, then the search's candidates by dev accuracy (those not already exported as an arm)."""
    from rewardsearch.report.results import effective_config
    from rewardsearch.search.finals import arm_accuracy, arm_seeds, rank_arms
    from rewardsearch.search.ranking import leaderboard, ranked

    cfg = effective_config(store)
    seeds = arm_seeds(cfg)
    split = cfg.ensemble.select_split
    arms = [a for a in store.arms() if a.kind in ("single", "ensemble")]
    # the report's one ranking (`rank_arms`), so the exported "best" is the report's best
    order = rank_arms(arms, {a.id: arm_accuracy(store, a, seeds, split) for a in arms})
    arm_units = [_unit_from_arm(store, a, seeds, split) for a, _ in order]
    seen = {tuple(sorted(s["id"] for s in u["specs"])) for u in arm_units}
    cand_units = [
        _unit_from_candidate(store, r, cfg.seed) for r in ranked(leaderboard(store, cfg.seed)) if (r["id"],) not in seen
    ]
    units = (arm_units + cand_units)[:top]
    if not units:
        raise ExportError("no evaluated candidate or reward set in this run to export")
    return units


# -- module text ---------------------------------------------------------------------------------------------


def _body(package: str, filename: str) -> str:
    """A module's source without its docstring, `__future__` imports and imports of rewardsearch."""
    text = resources.files(package).joinpath(filename).read_text()
    tree = ast.parse(text)
    lines = text.splitlines()
    drop: set[int] = set()
    for i, node in enumerate(tree.body):
        is_doc = i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        is_future = isinstance(node, ast.ImportFrom) and node.module == "__future__"
        is_ours = isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rewardsearch")
        if is_doc or is_future or is_ours:
            drop.update(range(node.lineno - 1, node.end_lineno or node.lineno))
    kept = "\n".join(line for n, line in enumerate(lines) if n not in drop).strip("\n")
    return f"# ---- copied from {package.replace('.', '/')}/{filename} ----\n{kept}\n"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")[:60] or "reward"


_LOADER = '''
def _load_member(name, source, entrypoint):
    """Run one member's source into a namespace of its own and return its reward function."""
    namespace = {"__name__": "rewardsearch_member_" + name}
    exec(compile(source, "<reward " + name + ">", "exec"), namespace)
    return namespace[entrypoint]
'''

_TRL_TAIL = '''
# ---- TRL: GRPOTrainer(reward_funcs=REWARD_FUNCS, args=GRPOConfig(reward_weights=REWARD_WEIGHTS, ...)) ----
if NORMALIZE == "zscore":
    # Exactly as trained: each reward z-scored within its GRPO group (consecutive completions of one prompt; a
    # batch laid out otherwise is grouped by identical prompt), then TRL's weighted sum.
    REWARD_FUNCS = [GroupZScore(fn, GROUP_SIZE) for fn in RAW_REWARD_FUNCS]
else:
    REWARD_FUNCS = list(RAW_REWARD_FUNCS)
REWARD_WEIGHTS = list(TRAIN_WEIGHTS)
'''

_SAMPLE_SUM = '''
def _weighted_scores(prompts, completions, answers, **kwargs):
    """Per-sample weighted sum of every reward (None, "no opinion", adds nothing), one batch call per reward."""
    totals = [0.0] * len(completions)
    per_reward = {}
    for fn, weight in zip(RAW_REWARD_FUNCS, SAMPLE_WEIGHTS):
        scores = fn(prompts=prompts, completions=completions, answer=answers, **kwargs)
        per_reward[fn.__name__] = scores
        for i, s in enumerate(scores):
            if s is not None:
                totals[i] += weight * float(s)
    return totals, per_reward
'''

_VERL_TAIL = '''
# ---- verl: custom_reward_function.path=<this file>, custom_reward_function.name=compute_score ----
def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    """One completion's score: the weighted sum of the rewards (see SAMPLE_WEIGHTS)."""
    info = dict(extra_info or {})
    question = info.get("question") or info.get("prompt") or ""
    prompts = [[{"role": "user", "content": str(question)}]]
    completions = [[{"role": "assistant", "content": solution_str}]]
    extra = {k: [v] for k, v in info.items() if k not in ("prompts", "completions", "answer")}
    totals, _ = _weighted_scores(prompts, completions, [str(ground_truth)], **extra)
    return float(totals[0])
'''

_OPENRLHF_TAIL = '''
# ---- OpenRLHF: --remote_rm_url <this file> (and --label_key for the gold answers) ----
def reward_func(queries, prompts, labels, **kwargs):
    """queries = prompt + response texts; returns {"rewards", "scores", "extra_logs"} (tensors when torch is there)."""
    responses = [q[len(p):] if q.startswith(p) else q for q, p in zip(queries, prompts)]
    chat_prompts = [[{"role": "user", "content": p}] for p in prompts]
    completions = [[{"role": "assistant", "content": r}] for r in responses]
    totals, per_reward = _weighted_scores(chat_prompts, completions, [str(x) for x in labels])
    logs = {name: [0.0 if s is None else float(s) for s in scores] for name, scores in per_reward.items()}
    try:
        import torch
    except ImportError:  # outside OpenRLHF (tests, other engines): plain lists
        return {"rewards": totals, "scores": totals, "extra_logs": logs}
    tensor = torch.tensor(totals, dtype=torch.float32)
    return {"rewards": tensor, "scores": tensor,
            "extra_logs": {name: torch.tensor(v, dtype=torch.float32) for name, v in logs.items()}}
'''

_USAGE = {
    "trl": "from {mod} import REWARD_FUNCS, REWARD_WEIGHTS\n"
           "    trainer = GRPOTrainer(model, reward_funcs=REWARD_FUNCS, train_dataset=ds,  # ds has an 'answer' column\n"
           "                          args=GRPOConfig(..., num_generations={g}, reward_weights=REWARD_WEIGHTS))",
    "verl": "custom_reward_function.path={path} custom_reward_function.name=compute_score\n"
            "    compute_score(data_source, solution_str, ground_truth, extra_info) -> float",
    "openrlhf": "--remote_rm_url {path} --label_key answer\n"
                "    reward_func(queries, prompts, labels) -> {{'rewards': Tensor, 'scores': Tensor, 'extra_logs': dict}}",
}


def _answer_format_source(answer_format: AnswerFormat) -> str:
    """`ANSWER_FORMAT = ...` for the exported module: the copied built-in, or a task's own format rebuilt."""
    if ANSWER_FORMATS.get(answer_format.name) is answer_format:
        return f"ANSWER_FORMAT = FORMATS[{answer_format.name!r}]  # the run's task's answer format\n"
    tree = ast.parse(answer_format.segment_source)
    if not any(isinstance(n, ast.FunctionDef) and n.name == "_solution" for n in tree.body):
        raise ExportError(f"answer format {answer_format.name!r}: its segment_source defines no _solution(text)")
    fields = {k: getattr(answer_format, k) for k in ("name", "instruction", "layout", "markers", "template", "answer_part")}
    args = "".join(f"    {k}={v!r},\n" for k, v in fields.items())
    return (
        "# the run's task's own answer format: its answer-segment function from its segment_source\n"
        f"_SEGMENT_SOURCE = {answer_format.segment_source!r}\n"
        "_segment_scope = {}\n"
        "exec(compile(_SEGMENT_SOURCE, '<answer format " + answer_format.name + ">', 'exec'), _segment_scope)\n"
        "ANSWER_FORMAT = AnswerFormat(\n"
        f"{args}    segment=_segment_scope['_solution'],\n    segment_source=_SEGMENT_SOURCE,\n)\n"
    )


def module_text(unit: dict[str, Any], fmt: str, group_size: int, path: Path, run_info: dict[str, Any],
                answer_format: AnswerFormat = TAGS) -> str:
    """The exported module for one reward set, in `fmt`, with base rewards for the run's `answer_format`."""
    from rewardsearch.rewards.base import base_rewards

    if fmt not in FORMATS:
        raise ExportError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    base_names = [f.__name__ for f in base_rewards(answer_format)]
    members = unit["specs"]
    zscore = unit["normalize"] == "zscore"
    train_weights = ([1.0 / len(base_names)] * len(base_names) if zscore else [1.0] * len(base_names)) + [1.0] * len(
        members
    )
    names = base_names + [m.get("entrypoint") or m["name"] for m in members]
    sample_weights = list(train_weights)
    if zscore:
        for i, n in enumerate(names):
            s = unit["scales"].get(n)
            sample_weights[i] = train_weights[i] / s if s else train_weights[i]
    usage = _USAGE[fmt].format(mod=path.stem, path=path.name, g=group_size)
    member_lines = "\n".join(f"    - {m['name']} (id {m['id']}, origin {m.get('origin')})" for m in members)
    head = f'''"""{unit['label']}: a reward set exported by rewardsearch ({fmt} form).

From run {run_info['run_dir']} (config {run_info['config_hash']}), {unit['source']}; generated {run_info['created']}.
Standard library only{"; torch is used when importable" if fmt == "openrlhf" else ""}. Importing this module runs the members' code.
Rewards: the three base rewards, then the candidate members:
{member_lines}
Answer format: {answer_format.name!r} (the run's task's; the base rewards read the answer with it).
Normalization in training: {"per-reward z-score within each GRPO group of " + str(group_size) + " completions" if zscore else "none (rewards summed as returned)"}.

Usage:
    {usage}
"""

from __future__ import annotations

'''
    parts = [head, _body("rewardsearch.tasks", "answers.py"), _body("rewardsearch.rewards", "base.py"),
             _answer_format_source(answer_format)]
    if zscore or fmt == "trl":
        parts.append(_body("rewardsearch.rewards", "normalize.py"))
    parts.append("# ---- the candidate members ----" + _LOADER)
    parts.append("MEMBER_SOURCES = " + json.dumps(
        {m["name"]: {"source": m["source"], "entrypoint": m.get("entrypoint") or m["name"]} for m in members},
        indent=1) + "\n")
    parts.append("CANDIDATE_FUNCS = [_load_member(name, m['source'], m['entrypoint']) "
                 "for name, m in MEMBER_SOURCES.items()]\n")
    parts.append(
        "RAW_REWARD_FUNCS = [*base_rewards(ANSWER_FORMAT), *CANDIDATE_FUNCS]\n"
        f"NORMALIZE = {unit['normalize']!r}\n"
        f"GROUP_SIZE = {group_size}  # GRPO completions per prompt in training\n"
        f"TRAIN_WEIGHTS = {train_weights!r}  # reward_weights the trial trained with\n"
        "# one completion at a time (verl, OpenRLHF): TRAIN_WEIGHTS divided by each reward's mean within-group std\n"
        f"# during training when it was z-scored (a reward that never varied keeps its weight)\n"
        f"SAMPLE_WEIGHTS = {sample_weights!r}\n"
    )
    if fmt == "trl":
        parts.append(_TRL_TAIL)
    else:
        parts.append(_SAMPLE_SUM)
        parts.append(_VERL_TAIL if fmt == "verl" else _OPENRLHF_TAIL)
    text = "\n\n".join(p.strip("\n") for p in parts) + "\n"
    compile(text, str(path), "exec")  # syntax only: compiling runs nothing
    return text


def _run_answer_format(cfg: Any) -> AnswerFormat:
    """The answer format the run's trials trained with: the task's (loading the task reads no data)."""
    from rewardsearch.tasks import load_task

    try:
        return load_task(cfg.task, cfg.seed).answer_format
    except (ImportError, ValueError) as exc:
        raise ExportError(f"cannot load the run's task {cfg.task.name!r} to read its answer format: {exc}") from None


def export_run(run_dir: Path, store: Store, fmt: str, top: int, out: Path | None) -> list[Path]:
    """Write `top` modules (+ manifests); returns the module paths."""
    from rewardsearch.report.results import effective_config

    cfg = effective_config(store)
    answer_format = _run_answer_format(cfg)
    units = choose(store, top)
    if out is not None and out.suffix == ".py":
        if len(units) > 1:
            raise ExportError(f"--out {str(out)!r} names one file; with --top {top} give a directory")
        paths = [out]
    else:
        folder = out or run_dir / "export" / fmt
        paths = [folder / f"{i:02d}_{_safe(u['label'])}_{fmt}.py" for i, u in enumerate(units, 1)]
    run_info = {"run_dir": str(run_dir), "config_hash": store.get_meta("config_hash"),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    for rank, (unit, path) in enumerate(zip(units, paths, strict=True), 1):
        text = module_text(unit, fmt, cfg.screen.num_generations, path, run_info, answer_format)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        manifest = {
            "format": fmt, "rank": rank, "label": unit["label"], "kind": unit["kind"], "strategy": unit["strategy"],
            "aliases": unit["aliases"], "normalize": unit["normalize"], "group_size": cfg.screen.num_generations,
            "includes_base_rewards": True, "answer_format": answer_format.name, "from": unit["source"],
            "members": [
                {
                    "name": m["name"], "id": m["id"], "origin": m.get("origin"), "round": m.get("round"),
                    "entrypoint": m.get("entrypoint") or m["name"],
                    "source_sha256": hashlib.sha256(m["source"].encode()).hexdigest(),
                    "checks": [{"stage": c["stage"], "ok": c["ok"], "flags": c["flags"], "reason": c["reason"]}
                               for c in store.checks(m["id"])] or "not in this run's store (another run's candidate)",
                }
                for m in unit["specs"]
            ],
            "scales_group_std": unit["scales"],
            "per_sample_note": "verl/openrlhf score completions without their group: a z-scored set becomes a "
                               "static weighted sum (SAMPLE_WEIGHTS in the module)" if unit["normalize"] == "zscore"
                               else None,
            "metrics": unit["metrics"],
            "run": {**run_info, "seed": cfg.seed, "task": cfg.task.name, "model": cfg.model.name},
            "module_sha256": hashlib.sha256(text.encode()).hexdigest(),
        }
        path.with_suffix(".manifest.json").write_text(json.dumps(manifest, indent=1, default=str))
    return paths
