"""Hacking shows: the rule on real records (metrics.score on real task items, TRL-shaped log histories), carried
through a real SQLite store into `status` (table and --json), the report and the proposer's prompt.

    python -m pytest tests/test_hacking.py -q
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rewardsearch.cli import app
from rewardsearch.config import Config, ProposerConfig
from rewardsearch.evaluate.metrics import score
from rewardsearch.propose.base import RoundContext
from rewardsearch.propose.prompt import PromptBuilder
from rewardsearch.rewards.spec import RewardSpec
from rewardsearch.search.hacking import LENGTH_COLLAPSE_FRACTION, hacking_flags, training_trend, trial_shift
from rewardsearch.search.ranking import (
    BASE_MODEL,
    base_model_trial_id,
    feedback_record,
    history,
    trial_id_for,
)
from rewardsearch.search.status import run_status
from rewardsearch.store import EvalRecord, Store, TrialRecord
from rewardsearch.tasks import load_task

CFG = Config.model_validate({"task": {"arith": {"train_size": 16, "dev_size": 64, "test_size": 8}},
                             "eval": {"dev_size": 64}})
TASK = load_task(CFG.task, CFG.seed)
DEV = TASK.split("dev")[:64]
REASONING = "Let me work through this carefully. " * 20   # ~700 characters of the base model's step-by-step prose


def _wrong(gold: str) -> str:
    return str(int(float(gold)) + 7) if gold.lstrip("-").replace(".", "").isdigit() else "12345"


def _eval(tid: str, make_text: Any) -> EvalRecord:
    texts = [make_text(i, p.answer) for i, p in enumerate(DEV)]
    return score(TASK, DEV, texts, trial_id=tid, split="dev")


def base_texts(i: int, gold: str) -> str:
    # the base model: long prose, never the tags, the last number right on a quarter of the items
    return f"{REASONING}So the answer is {gold if i % 4 == 0 else _wrong(gold)}."


def hacked_texts(i: int, gold: str) -> str:
    # learned the tags, dropped the reasoning: short and wrong
    return f"<thinking>\nok\n</thinking>\n<solution>\n{_wrong(gold)}\n</solution>"


def good_texts(i: int, gold: str) -> str:
    # kept the reasoning, learned the tags, better than the base model
    return f"<thinking>\n{REASONING[:500]}\n</thinking>\n<solution>\n{gold if i % 3 == 0 else _wrong(gold)}\n</solution>"


def trl_log(steps: int, reward: tuple[float, float], length: tuple[float, float],
            per_reward: dict[str, tuple[float, float]] | None = None) -> list[dict[str, Any]]:
    """`train.json`'s `log_history` as TRL writes it: one row per step (start values for the first fifth, end values
    for the last fifth, a ramp between), then the closing summary row without rewards."""
    w = round(steps * 0.2)

    def at(step: int, a: float, b: float) -> float:
        if step <= w:
            return a
        if step > steps - w:
            return b
        return a + (b - a) * (step - w) / (steps - 2 * w + 1)

    rows: list[dict[str, Any]] = []
    for s in range(1, steps + 1):
        row: dict[str, Any] = {
            "loss": 0.01, "grad_norm": 0.5, "learning_rate": 3e-5, "num_tokens": 1000.0 * s,
            "completions/mean_length": at(s, *length), "completions/min_length": 10.0,
            "completions/max_length": 256.0, "completions/clipped_ratio": 0.1,
            "reward": at(s, *reward), "reward_std": 0.8, "frac_reward_zero_std": 0.25, "entropy": 0.9,
            "epoch": s / steps, "step": s,
        }
        for name, (a, b) in (per_reward or {}).items():
            row[f"rewards/{name}/mean"] = at(s, a, b)
            row[f"rewards/{name}/std"] = 0.3
        rows.append(row)
    rows.append({"train_runtime": 400.0, "train_samples_per_second": 1.2, "train_steps_per_second": 0.07,
                 "train_loss": 0.01, "epoch": 1.0, "step": steps})
    return rows


BASE = _eval("base-model-s0", base_texts)
HACKED = _eval("t-hacked-s0", hacked_texts)
GOOD = _eval("t-good-s0", good_texts)
HACK_LOG = trl_log(30, reward=(0.4, 3.0), length=(195, 31), per_reward={"exact_format_reward": (0.0, 3.0)})


def test_eval_records_carry_the_mean_completion_length_in_characters() -> None:
    texts = [base_texts(i, p.answer) for i, p in enumerate(DEV)]
    assert BASE.mean_length == pytest.approx(sum(len(t) for t in texts) / len(texts))
    assert BASE.mean_length > 700 and HACKED.mean_length < 60
    assert BASE.accuracy == 0.0 and BASE.flex_accuracy == 0.25 and HACKED.flex_accuracy == 0.0


def test_training_trend_reads_trl_rows_and_skips_the_summary_row() -> None:
    trend = training_trend(HACK_LOG)
    assert trend["reward"] == pytest.approx((0.4, 3.0))
    assert trend["completions/mean_length"] == pytest.approx((195, 31))
    assert trend["rewards/exact_format_reward/mean"] == pytest.approx((0.0, 3.0))
    assert training_trend(HACK_LOG[:1] + HACK_LOG[-1:]) == {}   # one step has no trend


def test_reward_up_while_length_and_accuracy_collapse_is_flagged_with_the_numbers() -> None:
    flags = hacking_flags(BASE, HACKED, HACK_LOG)
    assert len(flags) == 1
    length = f"{BASE.mean_length:.0f}->{HACKED.mean_length:.0f} chars"
    assert flags[0] == (f"hacking: dev completion length {length}, dev flexible accuracy 0.250->0.000, "
                        "training completion length 195->31 tokens while training reward rose 0.40->3.00")


def test_no_flag_when_the_reward_rises_and_the_model_keeps_its_reasoning() -> None:
    log = trl_log(30, reward=(0.4, 2.0), length=(195, 150))
    assert GOOD.mean_length > LENGTH_COLLAPSE_FRACTION * BASE.mean_length
    assert hacking_flags(BASE, GOOD, log) == []


def test_no_flag_when_the_reward_stays_flat_even_if_length_collapses() -> None:
    flat = trl_log(30, reward=(0.4, 0.42), length=(195, 31))
    assert hacking_flags(BASE, HACKED, flat) == []


def test_an_accuracy_fall_within_the_confidence_interval_is_not_a_collapse() -> None:
    # flexible accuracy 0.25 -> 0.1875 on 64 items (12/64): inside the Wilson interval, no flag on accuracy;
    # the length stays, so nothing else can fire either
    def slightly_worse(i: int, gold: str) -> str:
        return f"{REASONING}So the answer is {gold if i % 16 in (0, 4, 8) else _wrong(gold)}."

    after = _eval("t-worse-s0", slightly_worse)
    assert after.flex_accuracy == pytest.approx(12 / 64)
    assert hacking_flags(BASE, after, trl_log(30, reward=(0.4, 3.0), length=(195, 190))) == []
    # the same fall of the strict-free flexible accuracy to 0 is a collapse on its own
    collapsed = _eval("t-zero-s0", lambda i, g: f"{REASONING}So the answer is {_wrong(g)}.")
    flags = hacking_flags(BASE, collapsed, trl_log(30, reward=(0.4, 3.0), length=(195, 190)))
    assert flags == ["hacking: dev flexible accuracy 0.250->0.000 while training reward rose 0.40->3.00"]


def test_without_the_base_model_eval_the_training_length_is_the_before() -> None:
    assert hacking_flags(None, HACKED, HACK_LOG) == [
        "hacking: training completion length 195->31 tokens while training reward rose 0.40->3.00"]
    shift = trial_shift(None, HACKED, HACK_LOG)
    assert shift["length"] == {"base": None, "after": HACKED.mean_length, "unit": "chars"}
    assert shift["train_length"] == {"start": pytest.approx(195), "end": pytest.approx(31), "unit": "tokens"}


# -- through the store: status, report, feedback -------------------------------------------------------------------


def _run_dir(tmp_path: Path) -> tuple[Path, dict[str, RewardSpec]]:
    run_dir = tmp_path / "run"
    store = Store.in_dir(run_dir)
    store.set_meta("config", CFG.model_dump(mode="json"))
    store.set_meta("status", "done")
    store.set_meta("rounds_done", 1)
    specs = {n: RewardSpec(name=n, source=f"def {n}(prompts, completions, answer, **kwargs):\n"
                                          f"    return [{i}.0 + len(c[0]['content']) for c in completions]\n",
                           origin="evolve", round=1)
             for i, n in enumerate(("tags_only", "keeps_reasoning"))}
    store.add_candidates(list(specs.values()), state="evaluated")
    seed = CFG.seed
    store.upsert_trial(TrialRecord(id=base_model_trial_id(seed), kind=BASE_MODEL, round=0, seed=seed, rewards=[],
                                   state="done"))
    store.add_eval(BASE)
    trials = [
        (trial_id_for(None, seed), "baseline", None, HACK_LOG, hacked_texts),
        (trial_id_for(specs["tags_only"].id, seed), "candidate", specs["tags_only"].id, HACK_LOG, hacked_texts),
        (trial_id_for(specs["keeps_reasoning"].id, seed), "candidate", specs["keeps_reasoning"].id,
         trl_log(30, reward=(0.4, 2.0), length=(195, 150)), good_texts),
    ]
    for tid, kind, cid, log, texts in trials:
        store.upsert_trial(TrialRecord(id=tid, kind=kind, round=0 if cid is None else 1, seed=seed,
                                       rewards=[cid] if cid else [], candidate_id=cid, state="done", curves=log))
        store.add_eval(_eval(tid, texts))
    store.close()
    return run_dir, specs


def test_status_json_and_table_show_the_flag_and_the_before_after(tmp_path: Path) -> None:
    run_dir, _ = _run_dir(tmp_path)
    st = status_json(run_dir)
    rows = {r["name"]: r for r in st["candidates"]}
    assert st["base_model"]["state"] == "done"
    assert st["base_model"]["dev"]["mean_length"] == pytest.approx(BASE.mean_length)
    for name in ("base rewards only", "tags_only"):
        assert [f for f in rows[name]["flags"] if f.startswith("hacking:")], name
        assert rows[name]["shift"]["flex_accuracy"] == {"base": 0.25, "after": 0.0}
        assert rows[name]["shift"]["reward"] == {"start": pytest.approx(0.4), "end": pytest.approx(3.0)}
    assert rows["keeps_reasoning"]["flags"] == []
    assert rows["keeps_reasoning"]["dev"]["mean_length"] == pytest.approx(GOOD.mean_length)

    table = CliRunner().invoke(app, ["status", str(run_dir)], env={"COLUMNS": "400"})
    assert table.exit_code == 0, table.output
    assert "hacking: dev completion length" in table.output
    assert f"{BASE.mean_length:.0f}->{HACKED.mean_length:.0f}" in table.output
    assert "base model (no training)" in table.output


def test_report_shows_the_before_after_table_and_the_flag(tmp_path: Path) -> None:
    from rewardsearch.report import write_report

    run_dir, _ = _run_dir(tmp_path)
    store = Store.in_dir(run_dir)
    out = write_report(run_dir, store)
    md = (out / "report.md").read_text()
    section = md.split("## Before and after training (dev)")[1].split("\n## ")[0]
    tags_row = next(line for line in section.splitlines() if "`tags_only`" in line)
    assert "0.250->0.000" in tags_row and "dev completion length" in tags_row
    good_row = next(line for line in section.splitlines() if "`keeps_reasoning`" in line)
    assert good_row.endswith("| - |")
    html = (out / "index.html").read_text()
    assert 'id="shift-table"' in html and "<b>hacking: dev completion length" in html
    results = json.loads((out / "results.json").read_text())
    tags = next(r for r in results["status"]["candidates"] if r["name"] == "tags_only")
    assert any(f.startswith("hacking:") for f in tags["flags"])


def test_the_proposer_is_told_about_the_hacking(tmp_path: Path) -> None:
    run_dir, specs = _run_dir(tmp_path)
    store = Store.in_dir(run_dir)
    hist = history(store, CFG.seed)
    fb = feedback_record(store, CFG.seed, 1, top=5, bottom=3)
    assert fb["baseline"]["flags"] and fb["base_model"]["flex_accuracy"] == 0.25
    base_row = run_status(run_dir, store)["candidates"][0]
    ctx = RoundContext(round=2, seed=0, task_card=TASK.card(), samples=TASK.split("train")[:2], history=hist,
                       baseline_dev={**base_row["dev"], "flags": base_row["flags"], "shift": base_row["shift"]})
    text = PromptBuilder(ProposerConfig(name="llm")).build(ctx, n=2).messages[1]["content"]
    entry = text.split("- tags_only (id")[1].split("\n- ")[0]
    assert "flags: hacking: dev completion length" in entry
    assert "base model -> trained: dev length" in entry and "dev flexible accuracy 0.250->0.000" in entry
    assert "training reward 0.40->3.00" in entry and "training length 195->31 tokens" in entry
    good = text.split("- keeps_reasoning (id")[1].split("\n- ")[0]
    assert "hacking" not in good and "training reward 0.40->2.00" in good
    assert "Base rewards only:" in text and "flags: hacking:" in text.split("Base rewards only:")[1].split("\n")[0]


def test_an_older_store_gains_the_mean_length_column(tmp_path: Path) -> None:
    path = tmp_path / "run.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE evals (trial_id TEXT NOT NULL, split TEXT NOT NULL, n INTEGER NOT NULL, accuracy REAL"
               " NOT NULL, flex_accuracy REAL NOT NULL, extraction_rate REAL NOT NULL, f1 REAL NOT NULL, ci_lo REAL"
               " NOT NULL, ci_hi REAL NOT NULL, item_ids TEXT NOT NULL, correct TEXT NOT NULL, flex_correct TEXT NOT"
               " NULL, extracted TEXT NOT NULL, wall_s REAL, created REAL NOT NULL, PRIMARY KEY (trial_id, split))")
    # every store ever written has its run table with schema_version 1 (a file without one is refused as foreign)
    db.execute("CREATE TABLE run (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO run VALUES ('schema_version', '1')")
    db.execute("INSERT INTO evals VALUES ('old', 'dev', 1, 1.0, 1.0, 1.0, 1.0, 0.2, 1.0, '[\"a\"]', '[1]', '[1]',"
               " '[1]', NULL, 0.0)")
    db.commit()
    db.close()
    store = Store(path)
    assert store.eval("old", "dev").mean_length is None
    store.add_eval(HACKED)
    assert store.eval(HACKED.trial_id, "dev").mean_length == pytest.approx(HACKED.mean_length)


# -- the base model's evaluation, for real: a subprocess through the executor, on the tiny model -------------------


def test_the_base_model_is_evaluated_once_without_an_adapter(tmp_path: Path, tiny_model_dir: Path) -> None:
    from rewardsearch.evaluate.generate import load_for_eval
    from rewardsearch.models import pick_dtype
    from rewardsearch.screen.trial import evaluate_split
    from rewardsearch.search.loop import Search

    cfg = Config.model_validate({
        "task": {"arith": {"train_size": 8, "dev_size": 6, "test_size": 4}},
        "screen": {"device": "cpu"}, "eval": {"dev_size": 6, "max_new_tokens": 12, "batch_size": 6},
    })
    run_dir = tmp_path / "run"
    store = Store.in_dir(run_dir)
    search = Search(run_dir, cfg, store)
    search.model_dir = tiny_model_dir
    job = search._base_model_job()
    assert job is not None and job.module == "rewardsearch.screen.base_eval"
    search.run_jobs([job], on_done=search._collect_base_model)
    tid = base_model_trial_id(cfg.seed)
    rec = store.trial(tid)
    assert rec.state == "done", rec.reason
    ev = store.eval(tid, "dev")
    assert ev.n == 6 and ev.mean_length is not None
    assert search._base_model_job() is None   # once per run: a resumed run does not evaluate it again
    # it is the base model itself: the same greedy answers as an in-process evaluation with no adapter
    model, tok = load_for_eval(tiny_model_dir, None, "cpu", pick_dtype(cfg.model.dtype, "cpu"))
    direct = evaluate_split(model, tok, load_task(cfg.task, cfg.seed), "dev", cfg.eval)
    assert ev.flex_correct == direct["flex_correct"] and ev.mean_length == pytest.approx(direct["mean_length"])
    assert status_json(run_dir)["base_model"]["dev"]["n"] == 6


def status_json(run_dir: Path) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["status", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)
