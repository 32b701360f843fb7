"""Export: each format's module, loaded in a fresh interpreter and called the way its engine calls it, scores a
fixed batch exactly as the originals did (base rewards in-process, candidate members through their sandbox).

    python -m pytest tests/test_export.py -q

The exported members here are the hand-written rewards of `conftest.SAFE_REWARDS`; the modules still run in a
subprocess (`python -I -S`: standard library only, rewardsearch not importable), which is also what proves them
standalone.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rewardsearch.config import SandboxConfig
from rewardsearch.rewards.base import BASE_REWARDS
from rewardsearch.rewards.normalize import group_indices, zscore_groups
from rewardsearch.rewards.spec import RewardSpec
from rewardsearch.sandbox import SandboxedReward

CLI = [sys.executable, "-m", "rewardsearch.cli"]
G = 4
QUESTIONS = ["Tom has 3 apples and buys 4 more. How many apples now?", "What is 10 minus 7?"]
GOLD = ["7", "3"]
TEXTS = [
    "<thinking>3+4=7</thinking>\n<solution>7</solution>", "7", "<solution>8</solution> it is 8", "I do not know",
    "<thinking>10-7</thinking><solution>3</solution>", "<solution>3</solution>", "three", "<thinking>x</thinking>",
]
PROMPTS = [[{"role": "user", "content": QUESTIONS[i // G]}] for i in range(2 * G)]
COMPLETIONS = [[{"role": "assistant", "content": t}] for t in TEXTS]
ANSWERS = [GOLD[i // G] for i in range(2 * G)]

HARNESS = r'''
import importlib.util, json, sys
path, fmt = sys.argv[1], sys.argv[2]
batch = json.loads(sys.stdin.read())
spec = importlib.util.spec_from_file_location("exported", path)
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
out = {"rewardsearch_loaded": any(m.startswith("rewardsearch") for m in sys.modules)}
if fmt == "trl":
    # GRPOTrainer._calculate_rewards: keywords, dataset columns, trainer objects
    logged = {}
    kw = dict(prompts=batch["prompts"], completions=batch["completions"], completion_ids=[[1, 2]] * len(batch["prompts"]),
              answer=batch["answers"], item_id=["i%d" % i for i in range(len(batch["prompts"]))], trainer_state=None,
              log_extra=lambda *a, **k: None, log_metric=logged.__setitem__)
    out["raw"] = [f(**kw) for f in mod.RAW_REWARD_FUNCS]
    out["trained"] = [f(**kw) for f in mod.REWARD_FUNCS]
    out["weights"] = mod.REWARD_WEIGHTS
    out["names"] = [f.__name__ for f in mod.REWARD_FUNCS]
elif fmt == "verl":
    # NaiveRewardManager: one call per sample, keywords
    out["scores"] = [mod.compute_score(data_source="arith", solution_str=c[0]["content"], ground_truth=a,
                                       extra_info={"question": p[0]["content"], "index": i})
                     for i, (p, c, a) in enumerate(zip(batch["prompts"], batch["completions"], batch["answers"]))]
    out["sample_weights"] = mod.SAMPLE_WEIGHTS
else:
    # OpenRLHF: queries are the templated prompt followed by the response
    prompts = ["<|user|>" + p[0]["content"] + "<|assistant|>" for p in batch["prompts"]]
    queries = [p + c[0]["content"] for p, c in zip(prompts, batch["completions"])]
    res = mod.reward_func(queries, prompts, batch["answers"])
    r = res["rewards"]
    out["type"] = type(r).__module__ + "." + type(r).__name__
    out["scores"] = [float(x) for x in r]
    out["extra_logs"] = sorted(res["extra_logs"])
print(json.dumps(out))
'''


def _originals(specs: list[dict]) -> list[list[float | None]]:
    """What training computed: base rewards here, candidate members in their sandbox workers."""
    out = [list(f(PROMPTS, COMPLETIONS, ANSWERS)) for f in BASE_REWARDS]
    for s in specs:
        with SandboxedReward(RewardSpec.from_dict(s), SandboxConfig()) as r:
            scores = r(PROMPTS, COMPLETIONS, answer=ANSWERS)
            assert r.failures == 0, r.last_error
            out.append(scores)
    return out


def _call(path: Path, fmt: str, isolated: bool, batch: dict | None = None) -> dict:
    flags = ["-I", "-S"] if isolated else ["-I"]
    batch = batch or {"prompts": PROMPTS, "completions": COMPLETIONS, "answers": ANSWERS}
    proc = subprocess.run([sys.executable, *flags, "-c", HARNESS, str(path), fmt], input=json.dumps(batch),
                          capture_output=True, text=True, timeout=120, cwd=path.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _export(run_dir: Path, fmt: str, out: Path, top: int = 3) -> list[Path]:
    proc = subprocess.run([*CLI, "export", str(run_dir), "--format", fmt, "--top", str(top), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return sorted(out.glob("*.py")) if out.suffix != ".py" else [out]


def _weighted(originals: list[list[float | None]], weights: list[float]) -> list[float]:
    return [sum(w * s[i] for s, w in zip(originals, weights, strict=True) if s[i] is not None)
            for i in range(len(TEXTS))]


@pytest.fixture
def exported(synthetic_run: Path, tmp_path: Path) -> dict[str, list[Path]]:
    return {fmt: _export(synthetic_run, fmt, tmp_path / fmt) for fmt in ("trl", "verl", "openrlhf")}


def _manifest(path: Path) -> dict:
    return json.loads(path.with_suffix(".manifest.json").read_text())


def test_the_ranking_exports_best_reward_sets_first_with_manifests(exported: dict[str, list[Path]]) -> None:
    labels = [_manifest(p)["label"] for p in exported["trl"]]
    assert labels == ["top-3", "top-2", "variety_0"]  # arms by dev mean over seeds
    m = _manifest(exported["trl"][0])
    assert m["normalize"] == "zscore" and m["includes_base_rewards"] and len(m["members"]) == 3
    for member in m["members"]:
        assert len(member["source_sha256"]) == 64 and [c["stage"] for c in member["checks"]] == ["static", "probe"]
    assert m["metrics"]["test"]["mean"] > 0.8 and len(m["module_sha256"]) == 64
    text = exported["trl"][0].read_text()
    assert not re.search(r"^\s*(import|from)\s+rewardsearch", text, re.MULTILINE)


def test_trl_export_scores_like_training(synthetic_run: Path, exported: dict[str, list[Path]]) -> None:
    for path in exported["trl"]:
        m = _manifest(path)
        specs = [json.loads(json.dumps(_spec(synthetic_run, x["id"]))) for x in m["members"]]
        originals = _originals(specs)
        got = _call(path, "trl", isolated=True)
        assert not got["rewardsearch_loaded"]
        assert got["raw"] == originals  # the same code on the same batch: the same floats, None where None
        groups = group_indices(PROMPTS, G)
        expected = [zscore_groups(o, groups) for o in originals] if m["normalize"] == "zscore" else originals
        assert got["trained"] == expected
        k = len(specs)
        assert got["weights"] == pytest.approx([1 / 3] * 3 + [1.0] * k if m["normalize"] == "zscore" else [1.0] * (3 + k))


def test_verl_export_scores_each_sample_as_the_weighted_sum(synthetic_run: Path, exported: dict[str, list[Path]]) -> None:
    for path in exported["verl"]:
        m = _manifest(path)
        originals = _originals([_spec(synthetic_run, x["id"]) for x in m["members"]])
        got = _call(path, "verl", isolated=True)
        weights = got["sample_weights"]
        if m["normalize"] == "zscore":  # members scaled by their training-time within-group std (fixture: 0.5, 0.6, ..)
            assert weights[3:] == pytest.approx([1 / (0.5 + 0.1 * i) for i in range(len(m["members"]))])
        assert got["scores"] == pytest.approx(_weighted(originals, weights))


def test_openrlhf_export_returns_tensors_of_the_weighted_sum(synthetic_run: Path, exported: dict[str, list[Path]]) -> None:
    for path in exported["openrlhf"]:
        m = _manifest(path)
        originals = _originals([_spec(synthetic_run, x["id"]) for x in m["members"]])
        verl = _call(exported["verl"][exported["openrlhf"].index(path)], "verl", isolated=True)
        got = _call(path, "openrlhf", isolated=False)  # OpenRLHF has torch: the rewards come back as a tensor
        assert got["type"] == "torch.Tensor" and not got["rewardsearch_loaded"]
        assert got["scores"] == pytest.approx(_weighted(originals, verl["sample_weights"]), abs=1e-5)  # float32
        assert "answer_reward" in got["extra_logs"]


def test_export_to_one_file_and_refusals(synthetic_run: Path, tmp_path: Path) -> None:
    [path] = _export(synthetic_run, "trl", tmp_path / "best.py", top=1)
    assert path.is_file() and (tmp_path / "best.manifest.json").is_file()
    proc = subprocess.run([*CLI, "export", str(synthetic_run), "--format", "trl", "--top", "2", "--out",
                           str(tmp_path / "two.py")], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "give a directory" in proc.stderr
    proc = subprocess.run([*CLI, "export", str(synthetic_run), "--format", "jax"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0 and "expected one of trl, verl, openrlhf" in proc.stderr


def test_copied_sources_define_no_name_twice() -> None:
    """The export concatenates answers.py, base.py and normalize.py into one namespace: names must not clash."""
    import ast
    from importlib import resources

    seen: dict[str, str] = {}
    for pkg, name in (("rewardsearch.tasks", "answers.py"), ("rewardsearch.rewards", "base.py"),
                      ("rewardsearch.rewards", "normalize.py")):
        tree = ast.parse(resources.files(pkg).joinpath(name).read_text())
        for node in tree.body:
            targets = [node.name] if isinstance(node, ast.FunctionDef | ast.ClassDef) else [
                t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
            for t in targets:
                assert t not in seen or seen[t] == name, f"{t} defined in {seen.get(t)} and {name}"
                seen[t] = name


def _spec(run_dir: Path, cid: str) -> dict:
    from rewardsearch.store import Store

    store = Store.in_dir(run_dir)
    try:
        return Store.spec_of(store.candidate(cid)).to_dict()
    finally:
        store.close()


# --- the run's answer format travels with the export ----------------------------------------------------------

# A format of a task's own: the answer on a last line "Answer: N"; the segment function is its source, run here.
_ANSWER_LINE_SOURCE = (
    "def _solution(text):\n"
    "    lines = [ln for ln in text.splitlines() if ln.startswith('Answer:')]\n"
    "    return lines[-1][len('Answer:'):].strip() or None if lines else None\n"
)


def _answer_line_format():
    from rewardsearch.tasks.answers import AnswerFormat

    scope: dict = {}
    exec(_ANSWER_LINE_SOURCE, scope)
    return AnswerFormat(name="answer_line", instruction="Reason, then end with a line 'Answer: N'.",
                        layout=r".*\nAnswer: [^\n]+\s*", markers=("Answer:",), segment=scope["_solution"],
                        segment_source=_ANSWER_LINE_SOURCE, template="{reasoning}\nAnswer: {answer}")


@pytest.mark.parametrize("which", ["boxed", "answer_line"])
def test_exported_base_rewards_follow_the_runs_answer_format(synthetic_run: Path, tmp_path: Path, which: str) -> None:
    from rewardsearch.rewards.base import base_rewards
    from rewardsearch.rewards.export import choose, module_text
    from rewardsearch.store import Store
    from rewardsearch.tasks.answers import BOXED

    answer_format = BOXED if which == "boxed" else _answer_line_format()
    texts = [answer_format.write("7", "3+4=7"), answer_format.write("8"), "<solution>7</solution>", "7",
             answer_format.write("3", "10-7"), "\\boxed{3}", "Answer: 3", ""]
    batch = {"prompts": PROMPTS, "completions": [[{"role": "assistant", "content": t}] for t in texts],
             "answers": ANSWERS}
    store = Store.in_dir(synthetic_run)
    if which == "boxed":   # through the CLI: the run's config names the format
        cfg = store.get_meta("config")
        cfg["task"]["answer_format"] = "boxed"
        store.set_meta("config", cfg)
        [path] = _export(synthetic_run, "trl", tmp_path / "best.py", top=1)
        assert _manifest(path)["answer_format"] == "boxed"
    else:                  # a task's own format (a plugin's; see test_task_registry for one end to end)
        path = tmp_path / "best.py"
        unit = choose(store, 1)[0]
        path.write_text(module_text(unit, "trl", G, path, {"run_dir": "r", "config_hash": "h", "created": "now"},
                                    answer_format))
    store.close()
    got = _call(path, "trl", isolated=True, batch=batch)
    expected = [f(batch["prompts"], batch["completions"], ANSWERS) for f in base_rewards(answer_format)]
    assert got["raw"][:3] == expected
    # the format decides: an answer laid out in it is graded; the tags (the paper's format) earn nothing
    assert [got["raw"][2][i] for i in (0, 1, 2, 4)] == [3.0, 0.5, 0.0, 3.0]   # 8 for 7: within 20%
