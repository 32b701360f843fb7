"""`replay`: play back recorded LLM answers, so a whole search reruns offline and CI exercises the LLM path.

    rewardsearch run --config SAME.yaml --out runs/again proposer.name=replay proposer.path=runs/first

The cassette (`proposer.path`) is one of:
- a run directory (or its `run.sqlite`): the answers of its `proposer_calls` rows with status `ok`, in order;
- a `.jsonl` file, one answer per line, or a `.json` file holding a list (or `{"answers": [...]}`).
An answer is a string (the model's text), an object with `content`, or a whole chat-completion object (its
`choices[0].message.content`); an optional `round` puts it in that round's queue, otherwise answers form one
queue, consumed in order. Each round's queue starts afresh in every process, so a replay killed mid-proposal
and resumed replays that round from its first answer, as the recording did.

Everything after the answer is the `llm` proposer's own code path (prompt, parsing, de-duplication, the number
of calls per round), so the same config replayed from a run's store reproduces its candidate ids exactly. The
prompt is still built and its hash compared with the recorded one: `prompt_matches: false` in a replayed call's
meta shows where a rerun's feedback diverged (training on another machine differs slightly), which does not
change what is replayed. A round that asks for more answers than the cassette holds ends the replay cleanly
(`exhausted`). Nothing is sent anywhere; no key is needed.
"""

from __future__ import annotations

import json
import sqlite3
from collections import deque
from pathlib import Path
from typing import Any

from rewardsearch.config import ProposerConfig
from rewardsearch.propose.base import ProposerNotAvailable
from rewardsearch.propose.llm import Answer, LLMProposer, _sha
from rewardsearch.propose.prompt import Prompt
from rewardsearch.store import Store


def _entry(item: Any, where: str) -> dict[str, Any]:
    if isinstance(item, str):
        return {"content": item}
    if isinstance(item, dict):
        if isinstance(item.get("content"), str):
            return item
        try:
            return {**item, "content": item["choices"][0]["message"]["content"]}
        except (KeyError, IndexError, TypeError):
            pass
    raise ProposerNotAvailable(f"cassette {where}: expected a string, an object with 'content' or a chat "
                               f"completion, got {json.dumps(item)[:80]}")


def load_cassette(path: str | Path) -> list[dict[str, Any]]:
    """The recorded answers at `path` (see the module docstring), each a dict with at least `content`."""
    p = Path(path)
    db = p / "run.sqlite" if p.is_dir() else p
    if db.suffix in (".sqlite", ".db") and db.is_file():
        # read-only: a cassette is never written to (Store() would create tables in it)
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        con.row_factory = sqlite3.Row
        try:
            rows = con.execute(
                "SELECT round, call, content, raw, prompt_sha, prompt_tokens, completion_tokens FROM proposer_calls"
                " WHERE status='ok' ORDER BY seq"
            ).fetchall()
        except sqlite3.OperationalError:
            rows = []
        finally:
            con.close()
        if not rows:
            raise ProposerNotAvailable(f"proposer.path={str(path)!r}: the run holds no recorded proposer answers")
        return [dict(r) for r in rows]
    if not p.is_file():
        raise ProposerNotAvailable(
            f"proposer.path={str(path)!r} does not exist (expected a run directory, a .json or a .jsonl cassette)"
        )
    text = p.read_text(errors="replace")
    try:
        if p.suffix == ".jsonl":
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            data = json.loads(text)
            items = data.get("answers") if isinstance(data, dict) else data
    except json.JSONDecodeError as exc:
        raise ProposerNotAvailable(f"cassette {str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(items, list) or not items:
        raise ProposerNotAvailable(f"cassette {str(path)!r} holds no answers (expected a non-empty list)")
    return [_entry(item, f"{path}[{i}]") for i, item in enumerate(items)]


class ReplayProposer(LLMProposer):
    """The `llm` proposer with the endpoint replaced by a cassette; see the module docstring."""

    name = "replay"
    uses_store = True

    def __init__(self, cfg: ProposerConfig, store: Store | None = None) -> None:
        super().__init__(cfg.model_copy(update={"budget_calls": None, "budget_tokens": None, "budget_usd": None}),
                         store)
        self.source = str(cfg.path)
        entries = load_cassette(cfg.path or "")
        by_round = all(e.get("round") is not None for e in entries)
        self._queues: dict[int | None, deque[dict[str, Any]]] = {}
        for e in entries:
            self._queues.setdefault(int(e["round"]) if by_round else None, deque()).append(e)
        self._by_round = by_round

    def _complete(self, rnd: int, call: int, prompt: Prompt, request: dict[str, Any]) -> Answer | None:
        queue = self._queues.get(rnd if self._by_round else None)
        if not queue:
            where = f" for round {rnd}" if self._by_round else ""
            self._stop = f"cassette {self.source} has no more answers{where}"
            return None
        e = queue.popleft()
        content = e["content"]
        recorded = e.get("prompt_sha")
        meta: dict[str, Any] = {"replayed_from": self.source, "spec_meta": {"replayed_from": self.source}}
        if recorded:
            meta["prompt_matches"] = recorded == _sha(prompt.messages)
        return Answer(
            content=content, raw=e.get("raw") or content or "", prompt_tokens=int(e.get("prompt_tokens") or 0),
            completion_tokens=int(e.get("completion_tokens") or 0), meta=meta,
        )

    def _cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return 0.0  # nothing was bought
