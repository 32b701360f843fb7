"""Your task, your data, end to end through the CLI on the tiny real model: a task class defined outside the
package (with an answer format of its own) and a JSONL file in the `boxed` format each run a tiny search; the
JSONL file also goes through `rewardsearch eval`.

    python -m pytest tests/test_tasks_e2e.py -q
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import requires

from rewardsearch.store import Store

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "rewardsearch.cli"]

# A task of its own, with an answer format of its own ("Answer: N" on the last line): one AnswerFormat object,
# no edit in rewardsearch. Its segment function is defined once, as source, and run here for the in-process one.
PLUGIN = '''
from rewardsearch.tasks import NumericTask, Problem
from rewardsearch.tasks.answers import AnswerFormat

SEGMENT_SOURCE = (
    "def _solution(text):\\n"
    "    lines = [ln for ln in text.splitlines() if ln.startswith('Answer:')]\\n"
    "    return (lines[-1][len('Answer:'):].strip() or None) if lines else None\\n"
)
_scope = {}
exec(SEGMENT_SOURCE, _scope)

ANSWER_LINE = AnswerFormat(
    name="answer_line",
    instruction="Think it through, then end with one line 'Answer: N', N a single number.",
    layout=r".*\\nAnswer: [^\\n]+\\s*",
    markers=("Answer:",),
    segment=_scope["_solution"],
    segment_source=SEGMENT_SOURCE,
    template="{reasoning}\\nAnswer: {answer}",
)


class DoubleTask(NumericTask):
    name = "double"
    version = "1"
    answer_format = ANSWER_LINE

    def _build(self):
        def make(split, k, n):
            return [Problem(f"double-{split}-{i:03d}", f"What is twice {k + i}?", str(2 * (k + i))) for i in range(n)]
        return {"train": make("train", 0, 24), "dev": make("dev", 100, 8), "test": make("test", 200, 8)}

    def _describe(self):
        return "Double a number.", "an integer", self.split("train")[0]
'''


def _tiny(model_dir: Path) -> list[str]:
    """A search of one round of two candidates, a couple of GRPO steps each, on the tiny model."""
    return [
        f"model.name={model_dir}", "search.rounds=1", "search.candidates_per_round=2",
        "screen.steps=2", "screen.max_completion_length=12", "screen.num_generations=4",
        "screen.prompts_per_step=1", "eval.dev_size=8", "eval.max_new_tokens=12", "eval.batch_size=8",
    ]


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def _search_ran(run_dir: Path, env: dict[str, str] | None = None) -> dict:
    """The run finished with the baseline and every candidate accounted for; returns `status --json`."""
    proc = _cli("status", str(run_dir), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    st = json.loads(proc.stdout)
    assert st["status"] == "done" and st["rounds_done"] == 1
    rows = st["candidates"]
    assert rows[0]["origin"] == "baseline" and rows[0]["state"] == "evaluated" and rows[0]["dev"]["n"] == 8
    cands = rows[1:]
    assert cands and all(c["origin"] == "evolve" for c in cands)
    assert any(c["state"] == "evaluated" for c in cands), cands
    for c in cands:
        assert c["state"] == "evaluated" or c["reason"], c
    return st


def test_a_task_from_outside_the_package_runs_a_search_and_exports(tmp_path: Path, tiny_model_dir: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "rs_e2e_tasks.py").write_text(PLUGIN)
    env = {"PYTHONPATH": os.pathsep.join([str(plugins), os.environ.get("PYTHONPATH", "")])}
    run_dir = tmp_path / "run"
    # task.answer_format=null: the task's own format, not the one the smoke preset sets for arith
    proc = _cli("run", "--preset", "smoke", "--out", str(run_dir), "task.name=rs_e2e_tasks:DoubleTask",
                "task.answer_format=null", *_tiny(tiny_model_dir), env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _search_ran(run_dir, env)

    store = Store.in_dir(run_dir)
    try:
        # evolve wrote its rewards in the task's format, and they passed the probes written in it
        evaluated = [c for c in store.candidates() if c["state"] == "evaluated"]
        for c in evaluated:
            assert "Answer:" in c["source"] and "<solution>" not in c["source"], c["name"]
        # the trials trained with the base rewards of that format, on the task's own problems
        [baseline] = [t for t in store.trials() if t.kind == "baseline"]
        assert any("rewards/answer_reward/mean" in row for row in baseline.curves)
        ev = store.eval(baseline.id, "dev")
        assert ev is not None and all(i.startswith("double-dev-") for i in ev.item_ids)
    finally:
        store.close()

    # the exported module rebuilds the format from its source: its base rewards grade "Answer: N", not tags
    out = tmp_path / "best.py"
    proc = _cli("export", str(run_dir), "--format", "trl", "--top", "1", "--out", str(out), env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    probe = (
        "import importlib.util, json, sys\n"
        "spec = importlib.util.spec_from_file_location('m', sys.argv[1]); m = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(m)\n"
        "c = [[{'role': 'assistant', 'content': t}] for t in ('2 times 3\\nAnswer: 6', '<solution>6</solution>')]\n"
        "print(json.dumps([m.ANSWER_FORMAT.name, m.RAW_REWARD_FUNCS[2](None, c, ['6', '6'])]))\n"
    )
    got = subprocess.run([sys.executable, "-I", "-S", "-c", probe, str(out)], capture_output=True, text=True,
                         timeout=120)
    assert got.returncode == 0, got.stderr[-2000:]
    assert json.loads(got.stdout) == ["answer_line", [3.0, 0.0]]


def _write_problems(path: Path) -> None:
    """50 fraction problems whose gold answers are LaTeX (\\frac{a}{b}), as a JSONL file of question/solution."""
    with path.open("w") as f:
        for i in range(50):
            a, b = i % 7 + 1, i % 5 + 2
            f.write(json.dumps({"problem": f"Write {a} divided by {b} as a fraction ({i}).",
                                "solution": f"\\frac{{{a}}}{{{b}}}"}) + "\n")


@pytest.mark.parametrize("check", ["numeric", pytest.param("math-verify", marks=requires("math_verify"))])
def test_a_jsonl_file_in_the_boxed_format_runs_eval_and_a_search(tmp_path: Path, tiny_model_dir: Path,
                                                                 check: str) -> None:
    data = tmp_path / "problems.jsonl"
    _write_problems(data)
    task = [f"task.path={data}", "task.question_field=problem", "task.answer_field=solution",
            "task.answer_format=boxed", f"task.check={check}", "task.dev_pool=10", "task.test_pool=10"]

    proc = _cli("eval", "--model", str(tiny_model_dir), "--task", "file", "--split", "dev", "--limit", "10",
                "--max-new-tokens", "12", "--batch-size", "10", "--device", "cpu", "--json", *task)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ev = json.loads(proc.stdout)
    assert len(ev["item_ids"]) == len(ev["correct"]) == 10 and all(i.startswith("file-dev-") for i in ev["item_ids"])
    assert set(ev["correct"]) <= {0, 1} and 0.0 <= ev["accuracy"] <= 1.0

    run_dir = tmp_path / "run"
    proc = _cli("run", "--preset", "smoke", "--out", str(run_dir), "task.name=file", *task, *_tiny(tiny_model_dir))
    assert proc.returncode == 0, proc.stderr[-3000:]
    _search_ran(run_dir)
    store = Store.in_dir(run_dir)
    try:
        assert store.get_meta("config")["task"]["check"] == check  # the run graded with the check asked for
        for c in store.candidates():
            assert "\\\\boxed{" in c["source"] and "<solution>" not in c["source"], c["name"]
    finally:
        store.close()
