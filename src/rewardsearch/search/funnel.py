"""The candidate funnel of each round: how many the proposer wrote and how many survived each stage.

Read from the store alone (proposer calls, candidates, checks), so a finished, interrupted or resumed run all
give the same numbers and nothing has to be kept in step during the run. Stages, in order:

- `proposed`: items in the proposer's answers (for a proposer without recorded calls, such as `evolve`: the
  candidates it gave); an item-style item defining several score functions counts once per function, since
  each became a candidate (`propose/item.py`);
- `parsed`: items that became a candidate (an object with a code string defining a function, not a reserved
  name); the rest are `unreadable`;
- `duplicates`: parsed items with the source of a candidate already in the run (dropped at parse time) plus
  candidates that behaved exactly like an earlier one on the probes (rejected at `dedup`);
- `passed_static`, `passed_probes`: candidates that passed the AST check, then the sandboxed dry run;
- `trained`: candidates that got a GRPO trial (whatever became of it: evaluated, dropped at a rung, failed);
- `last_rung`: those evaluated on dev after the full budget (with successive halving, the promoted ones).

- `refills`: the round's refill asks (`search.refills`: the loop asking again, within the round, for candidates
  rejected by the static check, the probes or as duplicates, with the reasons as notes) and `refilled`: the
  candidates those asks gave. Their requests and items are in `calls`, `proposed` and every later stage like any
  other: a refill proposal is a proposal.

`passed_probes` counts behavioural duplicates too (they passed the probes, then matched a twin), so
`passed_probes - dedup rejections` is what went to training. `tokens_per_s` is completion tokens over the
requests' wall time, prompt processing included: what a user waits for.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from rewardsearch.store import Store

_KEPT_REASONS = ("duplicate", "beyond")  # dropped items that parsed fine: a source duplicate, or one too many


def round_funnel(store: Store) -> list[dict[str, Any]]:
    rows: dict[int, dict[str, Any]] = defaultdict(lambda: {
        "calls": 0, "proposed": 0, "parsed": 0, "unreadable": 0, "duplicates": 0, "candidates": 0,
        "passed_static": 0, "passed_probes": 0, "trained": 0, "last_rung": 0, "refills": 0, "refilled": 0,
        "completion_tokens": 0, "request_s": 0.0,
    })
    with_calls: set[int] = set()
    for call in store.proposer_calls(status="ok"):
        r = rows[call["round"]]
        with_calls.add(call["round"])
        r["calls"] += 1
        parsed, dropped = call["parsed"], call["dropped"]
        unreadable = [d for d in dropped if not str(d.get("reason", "")).startswith(_KEPT_REASONS)]
        r["proposed"] += len(parsed) + len(dropped)
        r["parsed"] += len(parsed) + len(dropped) - len(unreadable)
        r["unreadable"] += len(unreadable)
        r["duplicates"] += sum(1 for d in dropped if str(d.get("reason", "")).startswith("duplicate"))
        r["completion_tokens"] += call["completion_tokens"] or 0
        r["request_s"] += call["latency_s"] or 0.0
    for ev in store.events("proposed"):
        if ev.get("refill"):
            rows[ev["round"]]["refills"] += 1
    started = {t.candidate_id for t in store.trials(kind="candidate") if t.state != "pending"}
    for c in store.candidates():
        r = rows[c["round"]]
        r["candidates"] += 1
        if c["round"] not in with_calls:  # evolve, files: every candidate it gave was readable by construction
            r["proposed"] += 1
            r["parsed"] += 1
        passed = {k["stage"] for k in store.checks(c["id"]) if k["ok"]}
        r["passed_static"] += "static" in passed
        r["passed_probes"] += "probe" in passed
        r["duplicates"] += (c["reason"] or "").startswith("dedup:")
        r["trained"] += c["state"] in ("trained", "evaluated", "dropped") or c["id"] in started
        r["last_rung"] += c["state"] == "evaluated"
        r["refilled"] += bool(c["meta"].get("refill"))
    out = []
    for rnd in sorted(rows):
        r = rows[rnd]
        r["request_s"] = round(r["request_s"], 2)
        r["tokens_per_s"] = round(r["completion_tokens"] / r["request_s"], 2) if r["request_s"] else None
        out.append({"round": rnd, **r})
    return out
