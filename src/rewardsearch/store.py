"""The run store: one SQLite file (WAL) in the run directory holding everything a run knows.

Tables: `run` (config, state), `candidates`, `checks`, `trials`, `evals` (per-item correctness), `rungs` (each
trial's result at each successive-halving rung and the promotion decision), `events`,
`feedback` (what each round handed the proposer), `proposer_calls` (every request to a proposer endpoint and
its answer: the audit trail, the budget's ledger and the replay cassette), `arms` (the final stage's reward
sets). Every state change is one transaction, so a kill at any point leaves the store consistent and loses at
most the trial in flight. Rows are plain records; JSON columns tolerate older rows (missing keys read as
defaults).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardsearch.rewards.spec import RewardSpec

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS run (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS candidates (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    round INTEGER NOT NULL,
    origin TEXT NOT NULL,
    source TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    parents TEXT NOT NULL DEFAULT '[]',
    entrypoint TEXT,
    meta TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL,
    reason TEXT,
    flags TEXT NOT NULL DEFAULT '[]',
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS checks (
    candidate_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    ok INTEGER NOT NULL,
    reason TEXT,
    flags TEXT NOT NULL DEFAULT '[]',
    details TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL,
    PRIMARY KEY (candidate_id, stage)
);
CREATE TABLE IF NOT EXISTS trials (
    id TEXT PRIMARY KEY,
    candidate_id TEXT,
    kind TEXT NOT NULL,
    round INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    rewards TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    dir TEXT,
    wall_s REAL,
    metrics TEXT NOT NULL DEFAULT '{}',
    curves TEXT NOT NULL DEFAULT '[]',
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS evals (
    trial_id TEXT NOT NULL,
    split TEXT NOT NULL,
    n INTEGER NOT NULL,
    accuracy REAL NOT NULL,
    flex_accuracy REAL NOT NULL,
    extraction_rate REAL NOT NULL,
    f1 REAL NOT NULL,
    ci_lo REAL NOT NULL,
    ci_hi REAL NOT NULL,
    item_ids TEXT NOT NULL,
    correct TEXT NOT NULL,
    flex_correct TEXT NOT NULL,
    extracted TEXT NOT NULL,
    wall_s REAL,
    created REAL NOT NULL,
    mean_length REAL,
    PRIMARY KEY (trial_id, split)
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS feedback (
    round INTEGER PRIMARY KEY,
    payload TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS proposer_calls (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    round INTEGER NOT NULL,
    proposer TEXT NOT NULL,
    call INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL,
    request TEXT NOT NULL DEFAULT '{}',
    prompt_sha TEXT,
    raw TEXT,
    content TEXT,
    parsed TEXT NOT NULL DEFAULT '[]',
    dropped TEXT NOT NULL DEFAULT '[]',
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    latency_s REAL,
    cost_usd REAL NOT NULL DEFAULT 0,
    error TEXT,
    meta TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS rungs (
    trial_id TEXT NOT NULL,
    candidate_id TEXT,
    round INTEGER NOT NULL,
    rung INTEGER NOT NULL,
    steps INTEGER NOT NULL,
    steps_trained INTEGER,
    state TEXT NOT NULL,
    n INTEGER,
    accuracy REAL,
    extraction_rate REAL,
    flex_accuracy REAL,
    item_ids TEXT NOT NULL DEFAULT '[]',
    correct TEXT NOT NULL DEFAULT '[]',
    decision TEXT,
    reason TEXT,
    wall_s REAL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (trial_id, rung)
);
CREATE TABLE IF NOT EXISTS arms (
    id TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    kind TEXT NOT NULL,
    strategy TEXT NOT NULL,
    members TEXT NOT NULL DEFAULT '[]',
    specs TEXT NOT NULL DEFAULT '[]',
    normalize TEXT NOT NULL DEFAULT 'none',
    aliases TEXT NOT NULL DEFAULT '[]',
    meta TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL
);
"""

# Candidate lifecycle. A candidate only moves forward; `resume` picks up each one where it stopped.
# "dropped": trained to a rung below the last and not promoted (successive halving, `screen/halving.py`).
# "infra_failed": accepted, but its trial failed for infrastructure reasons (crash, out of memory, past its deadline,
# lost node) after every retry: not the reward's fault, never fed back as one; `resume` trains it again.
CANDIDATE_STATES = ("proposed", "rejected", "accepted", "trained", "failed", "quarantined", "evaluated", "dropped",
                    "infra_failed")
TRIAL_STATES = ("pending", "done", "failed", "dropped")   # dropped: stopped at a rung, not promoted


@dataclass
class TrialRecord:
    id: str
    kind: str                      # "baseline" | "candidate" | (later) "ensemble" | "control"
    round: int
    seed: int
    rewards: list[str]             # candidate ids trained beside the base rewards
    candidate_id: str | None = None
    state: str = "pending"
    reason: str | None = None
    dir: str | None = None
    wall_s: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    curves: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class EvalRecord:
    trial_id: str
    split: str
    item_ids: list[str]
    correct: list[int]
    flex_correct: list[int]
    extracted: list[int]
    accuracy: float
    flex_accuracy: float
    extraction_rate: float
    f1: float
    ci95: tuple[float, float]
    wall_s: float | None = None
    # Mean completion length in characters (`evaluate/metrics.py:score` owns the unit); None in older stores.
    mean_length: float | None = None

    @property
    def n(self) -> int:
        return len(self.item_ids)

    @classmethod
    def from_trial(cls, trial_id: str, split: str, d: dict[str, Any]) -> EvalRecord:
        """The record of a trial's `eval_<split>.json` (written by `screen/trial.py`)."""
        return cls(
            trial_id=trial_id, split=split, item_ids=d["item_ids"], correct=d["correct"],
            flex_correct=d["flex_correct"], extracted=d["extracted"], accuracy=d["accuracy"],
            flex_accuracy=d["flex_accuracy"], extraction_rate=d["extraction_rate"], f1=d["f1"],
            ci95=tuple(d["ci95"]), wall_s=d.get("wall_s"), mean_length=d.get("mean_length"),
        )


@dataclass
class RungRecord:
    """One trial at one successive-halving rung: what it trained to, its dev-slice result, and the decision.

    `rung` is 1-based; `state` ok | failed; `decision` promoted | dropped | final | failed, None while the round's
    other trials at that rung are still training.
    """

    trial_id: str
    candidate_id: str | None
    round: int
    rung: int
    steps: int
    state: str
    steps_trained: int | None = None
    item_ids: list[str] = field(default_factory=list)
    correct: list[int] = field(default_factory=list)
    accuracy: float | None = None
    extraction_rate: float | None = None
    flex_accuracy: float | None = None
    decision: str | None = None
    reason: str | None = None
    wall_s: float | None = None

    @property
    def n(self) -> int:
        return len(self.item_ids)


@dataclass
class ArmRecord:
    """One reward set of the final stage (`search/finals.py`), trained with several seeds and evaluated on dev+test.

    `kind`: single | ensemble | control. `strategy`: retrain | top-k | greedy-cover | greedy-vote | base |
    random-k | random-search. `members` are candidate ids; `specs` their RewardSpec dicts (a random-search
    control's member lives in another run's store). `aliases` are other strategies that built the same set.
    """

    id: str
    label: str
    kind: str
    strategy: str
    members: list[str] = field(default_factory=list)
    specs: list[dict[str, Any]] = field(default_factory=list)
    normalize: str = "none"
    aliases: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


class StoreError(RuntimeError):
    """The file is not a rewardsearch run store (corrupt, another program's, or from a newer version); it is
    left exactly as it was."""


_SQLITE_MAGIC = b"SQLite format 3\x00"


def _check_file(path: Path) -> None:
    """Refuse, before anything is written, a file that is not a store this version can open."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb") as fh:
        head = fh.read(len(_SQLITE_MAGIC))
    if head != _SQLITE_MAGIC:
        raise StoreError(f"{str(path)!r} is not a run store (not an SQLite database: corrupt or another file); "
                         "it was left untouched: move it away, or point --out elsewhere")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            version = (db.execute("SELECT value FROM run WHERE key='schema_version'").fetchone()
                       if "run" in tables else None)
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{str(path)!r} is a damaged SQLite file ({exc}); it was left untouched") from None
    if version is None:
        raise StoreError(f"{str(path)!r} is an SQLite database but not a rewardsearch run store (no schema_version "
                         f"in a 'run' table; tables: {', '.join(sorted(tables)) or 'none'}); it was left untouched")
    if not str(version[0]).isdigit() or int(version[0]) > SCHEMA_VERSION:
        raise StoreError(f"{str(path)!r} was written by a newer rewardsearch (store schema {version[0]}, this one "
                         f"reads up to {SCHEMA_VERSION}); upgrade rewardsearch to open it")


class Store:
    """Thin, explicit access to the run database. Open one per process; not shared across threads."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _check_file(self.path)
        # isolation_level=None: we open transactions ourselves, one per state change.
        self.db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        self._depth = 0   # nesting of `tx`
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        # executescript commits on its own; CREATE ... IF NOT EXISTS makes it safe to repeat on resume.
        self.db.executescript(_SCHEMA)
        self._add_missing_columns()
        with self.tx():
            self.db.execute(
                "INSERT OR IGNORE INTO run(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )

    # Columns added after a table's first release: CREATE TABLE IF NOT EXISTS leaves an older file's table as it
    # was, so a store written by an older version gains them here (reading as NULL in old rows).
    _ADDED_COLUMNS = (("evals", "mean_length", "REAL"),)

    def _add_missing_columns(self) -> None:
        for table, column, decl in self._ADDED_COLUMNS:
            have = {r["name"] for r in self.db.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")

    @classmethod
    def in_dir(cls, run_dir: str | Path) -> Store:
        return cls(Path(run_dir) / "run.sqlite")

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One transaction; nested, the inner ones join the outer, so several writes (a finished trial's eval,
        state, candidate state and event) commit together or not at all."""
        if self._depth:
            self._depth += 1
            try:
                yield self.db
            finally:
                self._depth -= 1
            return
        self.db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self.db
        except BaseException:
            self._depth = 0
            self.db.execute("ROLLBACK")
            raise
        else:
            self._depth = 0
            self.db.execute("COMMIT")

    # -- run-level key/value -------------------------------------------------------------------------------

    def set_meta(self, key: str, value: Any) -> None:
        with self.tx():
            self.db.execute(
                "INSERT INTO run(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, json.dumps(value)),
            )

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM run WHERE key=?", (key,)).fetchone()
        return json.loads(row["value"]) if row else default

    # -- events --------------------------------------------------------------------------------------------

    def event(self, kind: str, **payload: Any) -> None:
        with self.tx():
            self.db.execute(
                "INSERT INTO events(ts, kind, payload) VALUES (?, ?, ?)",
                (time.time(), kind, json.dumps(payload, default=str)),
            )

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        q = "SELECT ts, kind, payload FROM events" + (" WHERE kind=?" if kind else "") + " ORDER BY seq"
        rows = self.db.execute(q, (kind,) if kind else ()).fetchall()
        return [{"ts": r["ts"], "kind": r["kind"], **json.loads(r["payload"])} for r in rows]

    # -- candidates ----------------------------------------------------------------------------------------

    def add_candidates(
        self, specs: list[RewardSpec], state: str = "proposed", proposed_round: int | None = None,
        mark: str | None = None,
    ) -> list[RewardSpec]:
        """Insert new candidates in one transaction; returns those actually inserted (ids are unique).

        With `proposed_round` (or any `mark` key), the round is marked proposed in the same transaction, so a
        resumed run never asks the proposer twice for one batch (an LLM would answer differently the second time).
        """
        now = time.time()
        added = []
        keys = ([f"proposed_round_{proposed_round}"] if proposed_round is not None else []) + ([mark] if mark else [])
        with self.tx():
            for key in keys:
                self.db.execute("INSERT OR REPLACE INTO run(key, value) VALUES (?, 'true')", (key,))
            for s in specs:
                cur = self.db.execute(
                    "INSERT OR IGNORE INTO candidates(id, name, round, origin, source, description, parents,"
                    " entrypoint, meta, state, created, updated) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (s.id, s.name, s.round, s.origin, s.source, s.description, json.dumps(s.parents),
                     s.entrypoint, json.dumps(s.meta), state, now, now),
                )
                if cur.rowcount:
                    added.append(s)
        return added

    def set_candidate_state(
        self, cid: str, state: str, reason: str | None = None, flags: list[str] | None = None
    ) -> None:
        if state not in CANDIDATE_STATES:
            raise ValueError(f"candidate state {state!r}: expected one of {', '.join(CANDIDATE_STATES)}")
        with self.tx():
            if flags is None:
                self.db.execute(
                    "UPDATE candidates SET state=?, reason=?, updated=? WHERE id=?",
                    (state, reason, time.time(), cid),
                )
            else:
                self.db.execute(
                    "UPDATE candidates SET state=?, reason=?, flags=?, updated=? WHERE id=?",
                    (state, reason, json.dumps(flags), time.time(), cid),
                )

    def candidates(self, round: int | None = None) -> list[dict[str, Any]]:
        q = "SELECT * FROM candidates" + (" WHERE round=?" if round is not None else "")
        rows = self.db.execute(q + " ORDER BY round, created, id", (round,) if round is not None else ())
        return [self._candidate_row(r) for r in rows.fetchall()]

    def candidate(self, cid: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM candidates WHERE id=?", (cid,)).fetchone()
        return self._candidate_row(row) if row else None

    @staticmethod
    def _candidate_row(r: sqlite3.Row) -> dict[str, Any]:
        d = dict(r)
        for k, default in (("parents", "[]"), ("meta", "{}"), ("flags", "[]")):
            d[k] = json.loads(d.get(k) or default)
        return d

    @staticmethod
    def spec_of(row: dict[str, Any]) -> RewardSpec:
        return RewardSpec.from_dict(row)

    # -- checks --------------------------------------------------------------------------------------------

    def add_check(
        self, cid: str, stage: str, ok: bool, reason: str | None, flags: list[str], details: dict[str, Any]
    ) -> None:
        with self.tx():
            self.db.execute(
                "INSERT OR REPLACE INTO checks(candidate_id, stage, ok, reason, flags, details, created)"
                " VALUES (?,?,?,?,?,?,?)",
                (cid, stage, int(ok), reason, json.dumps(flags), json.dumps(details, default=str), time.time()),
            )

    def checks(self, cid: str) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM checks WHERE candidate_id=? ORDER BY created", (cid,)).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["ok"] = bool(d["ok"])
            d["flags"] = json.loads(d["flags"])
            d["details"] = json.loads(d["details"])
            out.append(d)
        return out

    # -- trials --------------------------------------------------------------------------------------------

    def upsert_trial(self, t: TrialRecord) -> None:
        now = time.time()
        with self.tx():
            self.db.execute(
                "INSERT INTO trials(id, candidate_id, kind, round, seed, rewards, state, reason, dir, wall_s,"
                " metrics, curves, created, updated) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT(id) DO UPDATE SET state=excluded.state, reason=excluded.reason, dir=excluded.dir,"
                " wall_s=excluded.wall_s, metrics=excluded.metrics, curves=excluded.curves,"
                " updated=excluded.updated",
                (t.id, t.candidate_id, t.kind, t.round, t.seed, json.dumps(t.rewards), t.state, t.reason, t.dir,
                 t.wall_s, json.dumps(t.metrics), json.dumps(t.curves), now, now),
            )

    def forget_trial_failure(self, tid: str) -> None:
        """Make a failed trial pending again, with its failed rung rows gone, in one transaction (an
        infrastructure failure is trained again by a later session)."""
        with self.tx():
            self.db.execute("UPDATE trials SET state='pending', reason=NULL, updated=? WHERE id=?", (time.time(), tid))
            self.db.execute("DELETE FROM rungs WHERE trial_id=? AND decision='failed'", (tid,))

    def void_trial(self, tid: str, reason: str) -> None:
        """Withdraw a finished trial's results, in one transaction: its evaluations are deleted and it becomes an
        infrastructure failure, which the stage that owns it trains again; the event keeps what was withdrawn."""
        rec = self.trial(tid)
        if rec is None:
            raise KeyError(f"no trial {tid!r} in {self.path}")
        with self.tx():
            gone = {r["split"]: r["accuracy"] for r in self.db.execute(
                "SELECT split, accuracy FROM evals WHERE trial_id=?", (tid,)).fetchall()}
            self.db.execute("DELETE FROM evals WHERE trial_id=?", (tid,))
            rec.state, rec.reason = "failed", reason
            rec.metrics["infra"] = True
            self.upsert_trial(rec)
            self.event("trial_voided", trial=tid, reason=reason, evals=gone)

    def trial(self, tid: str) -> TrialRecord | None:
        row = self.db.execute("SELECT * FROM trials WHERE id=?", (tid,)).fetchone()
        return self._trial_row(row) if row else None

    def trials(self, kind: str | None = None) -> list[TrialRecord]:
        q = "SELECT * FROM trials" + (" WHERE kind=?" if kind else "") + " ORDER BY created, id"
        return [self._trial_row(r) for r in self.db.execute(q, (kind,) if kind else ()).fetchall()]

    @staticmethod
    def _trial_row(r: sqlite3.Row) -> TrialRecord:
        return TrialRecord(
            id=r["id"], kind=r["kind"], round=r["round"], seed=r["seed"], rewards=json.loads(r["rewards"]),
            candidate_id=r["candidate_id"], state=r["state"], reason=r["reason"], dir=r["dir"],
            wall_s=r["wall_s"], metrics=json.loads(r["metrics"] or "{}"), curves=json.loads(r["curves"] or "[]"),
        )

    # -- rungs ---------------------------------------------------------------------------------------------

    def add_rung(self, r: RungRecord) -> None:
        now = time.time()
        with self.tx():
            self.db.execute(
                "INSERT OR REPLACE INTO rungs(trial_id, candidate_id, round, rung, steps, steps_trained, state, n,"
                " accuracy, extraction_rate, flex_accuracy, item_ids, correct, decision, reason, wall_s, created,"
                " updated) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (r.trial_id, r.candidate_id, r.round, r.rung, r.steps, r.steps_trained, r.state, r.n, r.accuracy,
                 r.extraction_rate, r.flex_accuracy, json.dumps(r.item_ids), json.dumps(r.correct), r.decision,
                 r.reason, r.wall_s, now, now),
            )

    def decide_rungs(self, decisions: list[tuple[str, int, str, str]]) -> None:
        """`(trial_id, rung, decision, reason)` rows, in one transaction: a rung is decided whole or not at all."""
        with self.tx():
            for tid, rung, decision, reason in decisions:
                self.db.execute("UPDATE rungs SET decision=?, reason=?, updated=? WHERE trial_id=? AND rung=?",
                                (decision, reason, time.time(), tid, rung))

    def rungs(self, trial_id: str | None = None, round: int | None = None) -> list[RungRecord]:
        q, args = "SELECT * FROM rungs WHERE 1=1", []
        if trial_id is not None:
            q, args = q + " AND trial_id=?", [*args, trial_id]
        if round is not None:
            q, args = q + " AND round=?", [*args, round]
        return [
            RungRecord(
                trial_id=r["trial_id"], candidate_id=r["candidate_id"], round=r["round"], rung=r["rung"],
                steps=r["steps"], state=r["state"], steps_trained=r["steps_trained"],
                item_ids=json.loads(r["item_ids"]), correct=json.loads(r["correct"]), accuracy=r["accuracy"],
                extraction_rate=r["extraction_rate"], flex_accuracy=r["flex_accuracy"], decision=r["decision"],
                reason=r["reason"], wall_s=r["wall_s"],
            )
            for r in self.db.execute(q + " ORDER BY round, trial_id, rung", args).fetchall()
        ]

    # -- evals ---------------------------------------------------------------------------------------------

    def add_eval(self, e: EvalRecord) -> None:
        with self.tx():
            self.db.execute(
                "INSERT OR REPLACE INTO evals(trial_id, split, n, accuracy, flex_accuracy, extraction_rate, f1,"
                " ci_lo, ci_hi, item_ids, correct, flex_correct, extracted, wall_s, created, mean_length)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (e.trial_id, e.split, e.n, e.accuracy, e.flex_accuracy, e.extraction_rate, e.f1, e.ci95[0],
                 e.ci95[1], json.dumps(e.item_ids), json.dumps(e.correct), json.dumps(e.flex_correct),
                 json.dumps(e.extracted), e.wall_s, time.time(), e.mean_length),
            )

    def eval(self, trial_id: str, split: str) -> EvalRecord | None:
        row = self.db.execute(
            "SELECT * FROM evals WHERE trial_id=? AND split=?", (trial_id, split)
        ).fetchone()
        return self._eval_row(row) if row else None

    def evals(self, split: str | None = None) -> list[EvalRecord]:
        q = "SELECT * FROM evals" + (" WHERE split=?" if split else "") + " ORDER BY created"
        return [self._eval_row(r) for r in self.db.execute(q, (split,) if split else ()).fetchall()]

    @staticmethod
    def _eval_row(r: sqlite3.Row) -> EvalRecord:
        return EvalRecord(
            trial_id=r["trial_id"], split=r["split"], item_ids=json.loads(r["item_ids"]),
            correct=json.loads(r["correct"]), flex_correct=json.loads(r["flex_correct"]),
            extracted=json.loads(r["extracted"]), accuracy=r["accuracy"], flex_accuracy=r["flex_accuracy"],
            extraction_rate=r["extraction_rate"], f1=r["f1"], ci95=(r["ci_lo"], r["ci_hi"]), wall_s=r["wall_s"],
            mean_length=r["mean_length"],
        )

    # -- feedback ------------------------------------------------------------------------------------------

    def set_feedback(self, round: int, payload: dict[str, Any]) -> None:
        with self.tx():
            self.db.execute(
                "INSERT OR REPLACE INTO feedback(round, payload, created) VALUES (?,?,?)",
                (round, json.dumps(payload, default=str), time.time()),
            )

    def feedback(self, round: int) -> dict[str, Any] | None:
        row = self.db.execute("SELECT payload FROM feedback WHERE round=?", (round,)).fetchone()
        return json.loads(row["payload"]) if row else None

    # -- proposer calls ------------------------------------------------------------------------------------

    _CALL_JSON = {"request": "{}", "parsed": "[]", "dropped": "[]", "meta": "{}"}

    def add_proposer_call(self, rec: dict[str, Any]) -> int:
        """Append one request/answer record (one HTTP attempt, or one replayed answer); returns its `seq`.

        Keys: round, proposer, call (index within the round), attempt, status (ok | retry | fallback | error),
        request (model, messages, parameters: never headers or keys), prompt_sha, raw (the body as received),
        content, parsed, dropped, prompt_tokens, completion_tokens, latency_s, cost_usd, error, meta.
        """
        cols = ["ts", "round", "proposer", "call", "attempt", "status", "request", "prompt_sha", "raw", "content",
                "parsed", "dropped", "prompt_tokens", "completion_tokens", "latency_s", "cost_usd", "error", "meta"]
        row = {"ts": time.time(), "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0, **rec}
        values = []
        for c in cols:
            v = row.get(c)
            if c in self._CALL_JSON:
                v = json.dumps(v, default=str) if v is not None else self._CALL_JSON[c]
            values.append(v)
        with self.tx():
            cur = self.db.execute(
                f"INSERT INTO proposer_calls({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", values
            )
        return int(cur.lastrowid or 0)

    def proposer_calls(self, round: int | None = None, status: str | None = None) -> list[dict[str, Any]]:
        q, args = "SELECT * FROM proposer_calls WHERE 1=1", []
        if round is not None:
            q, args = q + " AND round=?", [*args, round]
        if status is not None:
            q, args = q + " AND status=?", [*args, status]
        out = []
        for r in self.db.execute(q + " ORDER BY seq", args).fetchall():
            d = dict(r)
            for k, default in self._CALL_JSON.items():
                d[k] = json.loads(d.get(k) or default)
            out.append(d)
        return out

    def proposer_spend(self, proposer: str | None = None) -> dict[str, float]:
        """Requests, tokens and money spent so far in this run (by one proposer, or all)."""
        q = ("SELECT COUNT(*) AS calls, COALESCE(SUM(prompt_tokens + completion_tokens), 0) AS tokens,"
             " COALESCE(SUM(cost_usd), 0) AS cost_usd FROM proposer_calls")
        row = self.db.execute(q + (" WHERE proposer=?" if proposer else ""), (proposer,) if proposer else ())
        r = row.fetchone()
        return {"calls": r["calls"], "tokens": r["tokens"], "cost_usd": r["cost_usd"]}

    # -- final-stage arms ----------------------------------------------------------------------------------

    def upsert_arm(self, a: ArmRecord) -> None:
        with self.tx():
            self.db.execute(
                "INSERT INTO arms(id, label, kind, strategy, members, specs, normalize, aliases, meta, created)"
                " VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET label=excluded.label,"
                " aliases=excluded.aliases, meta=excluded.meta",
                (a.id, a.label, a.kind, a.strategy, json.dumps(a.members), json.dumps(a.specs), a.normalize,
                 json.dumps(a.aliases), json.dumps(a.meta, default=str), time.time()),
            )

    def arms(self) -> list[ArmRecord]:
        rows = self.db.execute("SELECT * FROM arms ORDER BY created, id").fetchall()
        return [
            ArmRecord(
                id=r["id"], label=r["label"], kind=r["kind"], strategy=r["strategy"],
                members=json.loads(r["members"] or "[]"), specs=json.loads(r["specs"] or "[]"),
                normalize=r["normalize"], aliases=json.loads(r["aliases"] or "[]"), meta=json.loads(r["meta"] or "{}"),
            )
            for r in rows
        ]

