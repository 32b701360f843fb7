"""Tasks as plugins: the registry, answer formats owned by the task, bring-your-own-data tasks and checks.

Run: python -m pytest tests/test_task_registry.py -q
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
from conftest import requires

from rewardsearch.config import ConfigError, TaskConfig, load_config
from rewardsearch.rewards.base import base_rewards
from rewardsearch.tasks import load_task
from rewardsearch.tasks.answers import BOXED, FORMATS, HASHES, TAGS, extract_strict

needs_math_verify = requires("math_verify")

PLUGIN = '''
from rewardsearch.tasks import NumericTask, Problem
from rewardsearch.tasks.answers import HASHES


class CountTask(NumericTask):
    name = "count"
    version = "1"
    answer_format = HASHES

    def _build(self):  # no __init__ or from_config: NumericTask's keep self.cfg and self.seed
        def make(split, k):
            k += 1000 * self.seed
            return [Problem(f"count-{split}-{i}", f"What is {k + i} plus one?", str(k + i + 1)) for i in range(5)]
        return {"train": make("train", 0), "dev": make("dev", 100), "test": make("test", 200)}

    def _describe(self):
        return "Counting.", "an integer", self.split("train")[0]
'''


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A module `rs_plugin_tasks` on sys.path plus an installed-distribution record registering it as `count`."""
    (tmp_path / "rs_plugin_tasks.py").write_text(PLUGIN)
    dist = tmp_path / "rs_plugin_tasks-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rs-plugin-tasks\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[rewardsearch.tasks]\ncount = rs_plugin_tasks:CountTask\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("rs_plugin_tasks", None)


# --- registry -------------------------------------------------------------------------------------------


def test_builtins_load() -> None:
    assert load_task(TaskConfig(name="arith"), 0).name == "arith"
    assert load_task(TaskConfig(name="gsm8k", data_dir="/nonexistent"), 0).name == "gsm8k"  # data read lazily


def test_typo_suggests_the_name() -> None:
    with pytest.raises(ConfigError, match=r"task.name='gsmk8': unknown task \(did you mean 'gsm8k'\?\)"):
        load_config(preset="smoke", overrides=["task.name=gsmk8"])


def test_module_path_task(plugin_dir: Path) -> None:
    task = load_task(TaskConfig(name="rs_plugin_tasks:CountTask"), 0)
    assert task.answer_format is HASHES  # the task's own format
    p = task.split("dev")[0]
    assert task.prompt(p)[0]["content"] == HASHES.instruction
    assert task.is_correct(task.extract_strict(f"100 + 1 = 101\n#### {p.answer}"), p.answer)
    assert task.extract_strict(f"<solution>{p.answer}</solution>") is None  # not this task's format


def test_a_plugin_without_boilerplate_gets_its_config_and_seed(plugin_dir: Path) -> None:
    cfg = TaskConfig(name="rs_plugin_tasks:CountTask", answer_format="boxed", check="exact")
    task = load_task(cfg, 3)
    assert task.cfg is cfg and task.seed == 3
    assert task.answer_format is BOXED and task.check == "exact"  # configure() ran
    assert task.split("dev")[0].question == "What is 3100 plus one?"  # _build saw the seed
    assert load_task(TaskConfig(name="rs_plugin_tasks:CountTask"), 0).answer_format is HASHES  # nothing to apply


def test_entry_point_task(plugin_dir: Path) -> None:
    cfg = load_config(preset="smoke", overrides=["task.name=count", "task.answer_format=boxed"])
    task = load_task(cfg.task, 0)
    assert task.name == "count" and task.answer_format is BOXED  # config overrides the task's format
    assert "\\boxed" in task.card()


@pytest.mark.parametrize(
    ("name", "needle"),
    [("no_such_module_xyz:Task", "cannot import"), ("rewardsearch.tasks.answers:Nope", "has no 'Nope'"),
     ("rewardsearch.tasks.answers:TAGS", "no from_config"), (":Task", "package.module:Class")],
)  # fmt: skip
def test_bad_module_path_is_one_line(name: str, needle: str) -> None:
    with pytest.raises((ValueError, ConfigError)) as info:
        load_task(TaskConfig.model_construct(name=name), 0)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_unknown_task_key_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'task.question_feild' \(did you mean 'task.question_field'\?\)"):
        load_config(preset="smoke", overrides=["task.question_feild=q"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["task.dev_pool=10"], "task.dev_pool=10: task.name=arith ignores it (use task.arith.dev_size)"),
        (["task.name=gsm8k", "task.path=p.jsonl"],
         "task.path='p.jsonl': task.name=gsm8k ignores it (use task.data_dir or task.name=file)"),
        (["task.name=gsm8k", "task.question_field=q"],
         "task.question_field='q': task.name=gsm8k ignores it (it reads task.data_dir, task.dev_pool)"),
        (["task.name=file", "task.path=p.jsonl", "task.data_dir=d"],
         "task.data_dir='d': task.name=file ignores it (use task.path)"),
        (["task.name=file", "task.path=p.jsonl", "task.test_path=t.jsonl", "task.test_pool=5"],
         "task.test_pool=5: ignored while task.test_path='t.jsonl' gives the test set"),
        (["task.name=hf", "task.dataset=d", "task.test_pool=5"],
         "task.test_pool=5: ignored while task.test_split='test' gives the test set (or set task.test_split=null"),
        (["task.name=hf", "task.dataset=d", "task.path=p.jsonl"],
         "task.path='p.jsonl': task.name=hf ignores it (use task.name=file)"),
    ],
)  # fmt: skip
def test_a_setting_the_task_ignores_is_refused(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(preset="smoke", overrides=overrides)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "overrides",
    [
        ["task.name=file", "task.path=p.jsonl", "task.dev_pool=10", "task.test_pool=10", "task.question_field=q"],
        ["task.name=hf", "task.dataset=d", "task.test_split=null", "task.test_pool=5"],
        ["task.name=gsm8k", "task.data_dir=d", "task.dev_pool=10"],
        ["task.name=file", "task.path=p.jsonl"],  # the smoke preset's task.arith.* is no error for file
        ["task.name=rs_plugin_tasks:CountTask", "task.path=p.jsonl"],  # a plugin's reads are its own business
    ],
)
def test_settings_the_task_reads_are_accepted(overrides: list[str]) -> None:
    assert load_config(preset="smoke", overrides=overrides).task.name == overrides[0].split("=")[1]


def test_every_task_setting_is_classified() -> None:
    """A new TaskConfig field must be placed in registry.SOURCE_FIELDS (or be one every task reads)."""
    from rewardsearch.tasks.registry import READS, SOURCE_FIELDS

    assert set(TaskConfig.model_fields) == {"name", "answer_format", "check", "arith", *SOURCE_FIELDS}
    assert all(set(reads) <= set(SOURCE_FIELDS) for reads in READS.values())


def test_ignored_settings_in_a_stored_run_still_load() -> None:
    """A run made before the check (task.dev_pool beside arith) resumes, and its final stage still overrides."""
    from rewardsearch.config import Config, override_config

    old = Config().model_dump(mode="json")
    old["task"]["dev_pool"] = 10
    cfg = Config.model_validate(old)  # what `resume` does
    assert override_config(cfg, ["ensemble.max_members=4"], allowed=("ensemble.",)).task.dev_pool == 10
    with pytest.raises(ConfigError, match="task.dev_pool=10: task.name=arith ignores it"):
        override_config(cfg, ["task.answer_format=boxed"])  # new task input checks the section again


def test_unknown_answer_format_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"task.answer_format='boxd'.*did you mean 'boxed'"):
        load_config(preset="smoke", overrides=["task.answer_format=boxd"])


# --- answer formats -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=list(FORMATS))
def test_format_reads_what_it_writes(fmt) -> None:
    assert fmt.is_exact(fmt.write("18"))
    assert extract_strict(fmt.write("18"), fmt) == "18"
    assert extract_strict("I think it is 18.", fmt) is None
    exact, approx, answer = base_rewards(fmt)
    assert [f.__name__ for f in (exact, approx, answer)] == ["exact_format_reward", "approx_format_reward",
                                                             "answer_reward"]  # fmt: skip
    texts = [fmt.write("18"), fmt.write("17"), "18"]
    assert exact(None, texts, ["18"] * 3) == [3.0, 3.0, 0.0]
    assert approx(None, texts, ["18"] * 3) == [2.0, 2.0, -4.0]
    assert answer(None, texts, ["18"] * 3) == [3.0, 1.0, 0.0]  # 17 is within 10% of 18


@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=list(FORMATS))
def test_segment_source_matches_segment(fmt) -> None:
    namespace: dict = {}
    exec(fmt.segment_source, namespace)
    texts = [fmt.write("18"), fmt.write("18") + "\n" + fmt.write("19"), "", "nothing", fmt.write("7")[:-2],
             r"\boxed{\frac{7}{2}} then \boxed{3", "#### \n", "a\n####  72 dollars\nmore", "</solution><solution>"]
    for t in texts:
        assert namespace["_solution"](t) == fmt.segment(t), (fmt.name, t)


def test_tags_format_is_the_papers() -> None:
    assert base_rewards(TAGS)[0](None, ["<thinking>a</thinking><solution>1</solution>"], ["1"]) == [3.0]


# --- bring your own data --------------------------------------------------------------------------------

ROWS = [{"q": f"What is {i} times 3?", "a": f"\\frac{{{3 * i}}}{{1}}" if i % 2 else str(3 * i)} for i in range(50)]


def _write(tmp_path: Path, suffix: str) -> Path:
    path = tmp_path / f"problems{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    elif suffix == ".csv":
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, ["q", "a"])
            w.writeheader()
            w.writerows(ROWS)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(ROWS), path)
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_file_task(tmp_path: Path, suffix: str) -> None:
    path = _write(tmp_path, suffix)
    cfg = TaskConfig(name="file", path=str(path), question_field="q", answer_field="a", dev_pool=10, test_pool=10,
                     answer_format="boxed")  # fmt: skip
    task = load_task(cfg, seed=0)
    splits = {s: task.split(s) for s in ("train", "dev", "test")}
    assert {s: len(v) for s, v in splits.items()} == {"train": 30, "dev": 10, "test": 10}
    questions = [p.question for v in splits.values() for p in v]
    assert len(set(questions)) == 50
    assert load_task(cfg, seed=0).split("dev") == splits["dev"]
    assert load_task(cfg, seed=1).split("dev") != splits["dev"]
    p = splits["test"][0]
    assert task.prompt(p)[0]["content"] == BOXED.instruction
    value = p.question.split()[2]
    assert task.is_correct(task.extract_strict(f"{value} * 3 = ... so $\\boxed{{{int(value) * 3}}}$"), p.answer)


def test_file_task_bad_field_is_one_line(tmp_path: Path) -> None:
    task = load_task(TaskConfig(name="file", path=str(_write(tmp_path, ".jsonl")), dev_pool=5, test_pool=5), 0)
    with pytest.raises(ValueError, match=r"no column 'question'; columns are q, a") as info:
        task.split("train")
    assert "\n" not in str(info.value)


def test_file_task_needs_a_path() -> None:
    with pytest.raises(ConfigError, match="task.name=file needs task.path"):
        load_config(preset="smoke", overrides=["task.name=file"])


def test_exact_check(tmp_path: Path) -> None:
    path = tmp_path / "words.jsonl"
    path.write_text("".join(json.dumps({"question": f"Capital {i}?", "answer": "Paris"}) + "\n" for i in range(12)))
    task = load_task(TaskConfig(name="file", path=str(path), check="exact", dev_pool=2, test_pool=2), 0)
    assert task.is_correct(task.extract_strict(TAGS.write(" paris. ")), "Paris")
    assert not task.is_correct(task.extract_strict(TAGS.write("Lyon")), "Paris")
    assert task.extract_strict("Paris") is None


@needs_math_verify
def test_math_verify_check(tmp_path: Path) -> None:
    task = load_task(TaskConfig(name="file", path=str(_write(tmp_path, ".jsonl")), question_field="q",
                                answer_field="a", check="math-verify", answer_format="boxed",
                                dev_pool=5, test_pool=5), 0)  # fmt: skip
    assert task.is_correct(task.extract_strict(r"so $\boxed{\frac{1}{2}}$"), "0.5")
    assert not task.is_correct(task.extract_strict(r"so $\boxed{\frac{1}{3}}$"), "0.5")
    assert task.is_correct(task.extract_strict("so $\\boxed{\uff17\uff12}$"), "72")  # normalized through the task
    assert not task.is_correct(task.extract_strict(r"so $\boxed{9 \times 8}$"), "72")


# (predicted, gold, what math-verify 0.9 says of the raw pair, what our check says): the raw column shows each
# workaround in checks.py is needed; when a math-verify release changes one, this says which.
MATH_VERIFY_CASES = [
    ("\uff17\uff12", "72", False, True),       # full-width digits: parsed as nothing
    ("\u20133", "-3", False, True),             # en dash as the minus sign
    ("x \u2013 1", "x-1", False, True),
    ("\u22123", "-3", True, True),              # the Unicode minus it reads itself
    ("9 * 8", "72", True, False),               # evaluated arithmetic: a computation is not its value
    ("12-5", "7", True, False),
    ("9 \\times 8 = 72", "72", True, True),     # an equation answers with its right-hand side
    ("x(x+2)", "x^2+2x", True, True),           # gold is no plain number: symbolic equivalence as before
    ("\\frac{7}{2}", "3.5", True, True),
    ("1.2 \\times 10^{3}", "1200", True, True),  # one number in scientific notation
    ("\\frac{1}{3}", "0.5", False, False),
]  # fmt: skip


@needs_math_verify
@pytest.mark.parametrize(("predicted", "gold", "raw", "ours"), MATH_VERIFY_CASES)
def test_math_verify_misreadings_are_worked_around(predicted: str, gold: str, raw: bool, ours: bool) -> None:
    from math_verify import parse, verify

    from rewardsearch.tasks.checks import math_verify

    assert bool(verify(parse(f"${gold}$"), parse(f"${predicted}$"))) is raw
    assert math_verify(predicted, gold) is ours


@needs_math_verify
def test_math_verify_refuses_to_grade_off_the_main_thread() -> None:
    import threading

    from rewardsearch.tasks.checks import math_verify

    # in a thread math-verify's signal.alarm timeout cannot be set; it would log and grade everything wrong
    errors: list[BaseException] = []

    def grade() -> None:
        try:
            math_verify("72", "72")
        except RuntimeError as exc:
            errors.append(exc)

    t = threading.Thread(target=grade)
    t.start()
    t.join()
    assert len(errors) == 1 and "main thread" in str(errors[0])
    assert math_verify("72", "72")  # and in the main thread it grades


def test_math_verify_card_states_the_computation_rule(tmp_path: Path) -> None:
    task = load_task(TaskConfig(name="file", path=str(_write(tmp_path, ".jsonl")), question_field="q",
                                answer_field="a", check="math-verify", answer_format="boxed",
                                dev_pool=5, test_pool=5), 0)  # fmt: skip
    assert "'math-verify' check" in task.card() and "'9 * 8'" in task.card()
    numeric = load_task(TaskConfig(name="file", path=str(_write(tmp_path, ".jsonl")), question_field="q",
                                   answer_field="a", dev_pool=5, test_pool=5), 0)  # fmt: skip
    assert "'9 * 8'" not in numeric.card()


@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=list(FORMATS))
def test_probe_pool_is_written_in_the_format(fmt) -> None:
    from rewardsearch.sandbox.probe import build_pool

    pool = {p.kind: p.text for p in build_pool([("What is 9 times 2?", "18")], fmt)}
    assert extract_strict(pool["correct"], fmt) == "18"
    assert extract_strict(pool["wrong"], fmt) == "19"
    assert fmt.segment(pool["missing_close"]) is None
    assert fmt.segment(pool["unformatted"]) is None and "18" in pool["unformatted"]
    assert not fmt.segment(pool["empty_formatted"])  # markers around nothing
    assert all(pool["doubled_tags"].count(m) == 2 for m in fmt.markers)
    # the realistic kinds: answered as `correct` (or `wrong`), with calculations, a loop or chatter around it
    assert [extract_strict(pool[k], fmt) for k in ("worked", "worked_wrong", "repeated", "trailing")] == [
        "18", "19", "18", "18"]
    assert "20 - 2 = 18" in pool["worked"] and "20 - 1 = 19" in pool["worked_wrong"]
    assert not fmt.is_exact(pool["trailing"])


@pytest.mark.parametrize(("require", "expect_rc"), [("1", 4), ("0", 0)])
def test_ci_fails_rather_than_skips_without_math_verify(require: str, expect_rc: int) -> None:
    """With RS_REQUIRE_EXTRAS=1 (.ci/run) a missing math-verify stops the run; without it, its tests skip."""
    import os
    import subprocess

    # sys.modules[name] = None makes find_spec answer None: math-verify looks uninstalled to this child alone
    code = ("import sys; sys.modules['math_verify'] = None; import pytest; "
            "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', sys.argv[1] + '::test_math_verify_check']))")
    proc = subprocess.run([sys.executable, "-c", code, __file__], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).parent.parent, env={**os.environ, "RS_REQUIRE_EXTRAS": require})
    assert proc.returncode == expect_rc, proc.stdout[-2000:] + proc.stderr[-2000:]
    if require == "1":
        assert "math_verify is not installed: pip install -e '.[test,math]'" in proc.stdout + proc.stderr
    else:
        assert "1 skipped" in proc.stdout
