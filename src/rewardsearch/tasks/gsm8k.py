"""`gsm8k`: grade-school math word problems (openai/grade-school-math, MIT).

Read from `train.jsonl`/`test.jsonl` in a directory (lines `{"question", "answer"}`, the gold number after
`#### `), or through `datasets` (`openai/gsm8k`, config `main`) when no directory is given. The dev split is a
seeded sample of `dev_pool` train problems, kept in their original order; the train split is the rest, so
GRPO never trains on a problem used for selection. Ids carry the original index within the source file
(`gsm8k-train-00017`, `gsm8k-dev-00042`, `gsm8k-test-00003`), so they are stable across seeds and pools.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import TYPE_CHECKING

from rewardsearch.tasks import NumericTask, Problem

if TYPE_CHECKING:
    from rewardsearch.config import TaskConfig

Row = tuple[str, str]  # (question, full answer text with the "#### <gold>" line)


def gold_answer(solution: str) -> str:
    """The number after the last `####`, without thousands separators: "...\\n#### 1,234" -> "1234"."""
    if "####" not in solution:
        raise ValueError(f"gsm8k answer lacks a '#### <number>' line: {solution[-80:]!r}")
    return solution.rsplit("####", 1)[1].strip().replace(",", "")


def _read_jsonl(path: Path) -> list[Row]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                rows.append((str(record["question"]), str(record["answer"])))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(
                    f"{path}:{lineno}: expected a JSON object with 'question' and 'answer' ({exc})"
                ) from None
    return rows


def _load_dir(data_dir: str) -> dict[str, list[Row]]:
    root = Path(data_dir).expanduser()
    missing = [name for name in ("train.jsonl", "test.jsonl") if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"task.data_dir={str(root)!r} lacks {', '.join(missing)}: expected train.jsonl and test.jsonl "
            "from openai/grade-school-math (or leave task.data_dir unset to read openai/gsm8k via datasets)"
        )
    return {"train": _read_jsonl(root / "train.jsonl"), "test": _read_jsonl(root / "test.jsonl")}


def _load_hub() -> dict[str, list[Row]]:
    try:
        from datasets import load_dataset
    except ImportError as exc:
        raise ImportError("reading openai/gsm8k needs the 'datasets' package (or set task.data_dir)") from exc
    ds = load_dataset("openai/gsm8k", "main")
    return {split: [(r["question"], r["answer"]) for r in ds[split]] for split in ("train", "test")}


class GSM8KTask(NumericTask):
    """GSM8K with a seeded dev slice of train; data are loaded on first use and kept."""

    name = "gsm8k"
    version = "2"  # 2: the widened number notation and the bracketed-aside rule of answers.py

    def __init__(self, data_dir: str | None, dev_pool: int, seed: int) -> None:
        self.data_dir = data_dir
        self.dev_pool = dev_pool
        self.seed = seed
        self._splits: dict[str, list[Problem]] | None = None

    @classmethod
    def from_config(cls, cfg: TaskConfig, seed: int) -> GSM8KTask:
        task = cls(cfg.data_dir, cfg.dev_pool, seed)
        task.configure(cfg)
        return task

    def _build(self) -> dict[str, list[Problem]]:
        raw = _load_dir(self.data_dir) if self.data_dir is not None else _load_hub()
        train_rows = raw["train"]
        if self.dev_pool >= len(train_rows):
            raise ValueError(
                f"task.dev_pool={self.dev_pool}: must be smaller than the {len(train_rows)} train problems"
            )
        digest = hashlib.sha256(f"rewardsearch/gsm8k/{self.seed}/dev".encode()).digest()
        order = list(range(len(train_rows)))
        random.Random(int.from_bytes(digest[:8], "big")).shuffle(order)
        dev_idx = set(order[: self.dev_pool])

        test = [Problem(f"gsm8k-test-{i:05d}", q, gold_answer(a)) for i, (q, a) in enumerate(raw["test"])]
        dev = [
            Problem(f"gsm8k-dev-{i:05d}", q, gold_answer(a))
            for i, (q, a) in enumerate(train_rows)
            if i in dev_idx
        ]
        # The files hold no repeated question today; drop any from train anyway, since training on a
        # dev or test question would leak into selection or the final report.
        held_out = {p.question.strip() for p in dev} | {p.question.strip() for p in test}
        train = [
            Problem(f"gsm8k-train-{i:05d}", q, gold_answer(a))
            for i, (q, a) in enumerate(train_rows)
            if i not in dev_idx and q.strip() not in held_out
        ]
        return {"train": train, "dev": dev, "test": test}

    def _describe(self) -> tuple[str, str, Problem]:
        what = (
            "GSM8K: grade-school math word problems needing 2-8 steps of arithmetic (openai/gsm8k). "
            f"The dev split is a seeded slice of {self.dev_pool} train problems; test is the official test set."
        )
        example = Problem(
            "gsm8k-example",
            "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
            "How many clips did Natalia sell altogether in April and May?",
            "72",
        )
        return (
            what,
            "an integer (almost always positive), written without units or commas (e.g. 72).",
            example,
        )
