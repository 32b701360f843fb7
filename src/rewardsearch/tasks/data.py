"""`file` and `hf`: bring your own problems without code.

- `task.name=file`: rows of a local `.jsonl`, `.csv` or `.parquet` file (`task.path`), optionally a second
  file of test rows (`task.test_path`);
- `task.name=hf`: a `datasets` dataset (`task.dataset`, `task.config`, `task.train_split`, `task.test_split`).

`task.question_field` and `task.answer_field` name the columns. Test is the given test rows, or else a seeded
slice of `task.test_pool` rows; dev is a seeded slice of `task.dev_pool` of the remaining rows; train is the
rest (minus any question also in dev or test), so GRPO never trains on a problem used for selection. Ids
carry the row's index in its source (`file-train-00017`), stable across seeds. Gold answers are the answer
column as text; the check (`task.check`: numeric by default, exact, math-verify) and the answer format
(`task.answer_format`: tags by default) come from config.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rewardsearch.tasks import NumericTask, Problem

if TYPE_CHECKING:
    from rewardsearch.config import TaskConfig

Row = tuple[str, str]  # (question, gold answer)


def _fields(records: list[dict[str, Any]], cfg: TaskConfig, where: str) -> list[Row]:
    rows = []
    for i, r in enumerate(records):
        missing = [f for f in (cfg.question_field, cfg.answer_field) if f not in r]
        if missing:
            raise ValueError(
                f"{where} row {i}: no column {missing[0]!r}; columns are {', '.join(map(str, r))} "
                "(set task.question_field / task.answer_field)"
            )
        rows.append((str(r[cfg.question_field]), str(r[cfg.answer_field]).strip()))
    return rows


def read_rows(path: str, cfg: TaskConfig) -> list[Row]:
    """The (question, answer) rows of a .jsonl, .csv or .parquet file."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"task.path={str(p)!r} does not exist (expected a .jsonl, .csv or .parquet file)")
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".json"):
        records = []
        with p.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"{p}:{lineno}: not a JSON object ({exc})") from None
    elif suffix == ".csv":
        with p.open(encoding="utf-8", newline="") as f:
            records = list(csv.DictReader(f))
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        records = pq.read_table(p).to_pylist()
    else:
        raise ValueError(f"task.path={str(p)!r}: expected a .jsonl, .csv or .parquet file, got {suffix or 'no suffix'}")
    if not records or not all(isinstance(r, dict) for r in records):
        raise ValueError(f"task.path={str(p)!r}: expected a non-empty list of records (objects / rows)")
    return _fields(records, cfg, str(p))


def _seeded_order(n: int, key: str) -> list[int]:
    digest = hashlib.sha256(key.encode()).digest()
    order = list(range(n))
    random.Random(int.from_bytes(digest[:8], "big")).shuffle(order)
    return order


def build_splits(name: str, train_rows: list[Row], test_rows: list[Row] | None, cfg: TaskConfig, seed: int
                 ) -> dict[str, list[Problem]]:  # fmt: skip
    """Seeded test (if not given) and dev slices of the train rows, the rest as train."""
    order = _seeded_order(len(train_rows), f"rewardsearch/{name}/{seed}/split")
    test_n = 0 if test_rows is not None else cfg.test_pool
    if test_n + cfg.dev_pool >= len(train_rows):
        raise ValueError(
            f"task.dev_pool={cfg.dev_pool}" + (f" + task.test_pool={test_n}" if test_n else "")
            + f": must be smaller than the {len(train_rows)} rows, so that train keeps some"
        )
    test_idx, dev_idx = set(order[:test_n]), set(order[test_n : test_n + cfg.dev_pool])
    if test_rows is not None:
        test = [Problem(f"{name}-test-{i:05d}", q, a) for i, (q, a) in enumerate(test_rows)]
    else:
        test = [Problem(f"{name}-test-{i:05d}", q, a) for i, (q, a) in enumerate(train_rows) if i in test_idx]
    dev = [Problem(f"{name}-dev-{i:05d}", q, a) for i, (q, a) in enumerate(train_rows) if i in dev_idx]
    held_out = {p.question.strip() for p in dev} | {p.question.strip() for p in test}
    train = [
        Problem(f"{name}-train-{i:05d}", q, a)
        for i, (q, a) in enumerate(train_rows)
        if i not in test_idx and i not in dev_idx and q.strip() not in held_out
    ]
    return {"train": train, "dev": dev, "test": test}


class FileTask(NumericTask):
    """Problems from a local file (see the module docstring)."""

    name = "file"
    version = "1"

    def _build(self) -> dict[str, list[Problem]]:
        assert self.cfg.path is not None, "TaskConfig requires task.path for task.name=file"
        train = read_rows(self.cfg.path, self.cfg)
        test = read_rows(self.cfg.test_path, self.cfg) if self.cfg.test_path else None
        return build_splits(self.name, train, test, self.cfg, self.seed)

    def _describe(self) -> tuple[str, str, Problem]:
        example = self.split("train")[0]
        what = f"Problems from {Path(self.cfg.path or '').name}: question column {self.cfg.question_field!r}."
        return what, f"the {self.cfg.answer_field!r} column, judged by the {self.check!r} check.", example


class HFTask(FileTask):
    """Problems from a `datasets` dataset (see the module docstring)."""

    name = "hf"

    def _build(self) -> dict[str, list[Problem]]:
        try:
            from datasets import load_dataset
        except ImportError as exc:
            raise ImportError("task.name=hf needs the 'datasets' package: pip install datasets") from exc
        ds = load_dataset(self.cfg.dataset, self.cfg.config)
        train = _fields(list(ds[self.cfg.train_split]), self.cfg, f"{self.cfg.dataset}[{self.cfg.train_split}]")
        test = None
        if self.cfg.test_split is not None:
            test = _fields(list(ds[self.cfg.test_split]), self.cfg, f"{self.cfg.dataset}[{self.cfg.test_split}]")
        return build_splits(self.name, train, test, self.cfg, self.seed)

    def _describe(self) -> tuple[str, str, Problem]:
        example = self.split("train")[0]
        what = f"Problems from the dataset {self.cfg.dataset} ({self.cfg.config or 'default'} config)."
        return what, f"the {self.cfg.answer_field!r} column, judged by the {self.check!r} check.", example
