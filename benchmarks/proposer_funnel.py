"""How many candidates a served local model writes that survive the checks: the proposer side of a run, alone.

    PYTHONPATH=src python3 benchmarks/proposer_funnel.py --model qwen-coder-0.5b [--style code] [--rounds 4] \\
        [--per-round 2] [--refills 2]

Serves `--model` with llama.cpp exactly as `proposer.serve=llama.cpp` does and runs `--rounds` rounds of the
search loop's own proposal step (`Search.propose_and_check`: the proposal, the checks, then up to `--refills`
refill asks for candidates rejected by the static check, the probes or as duplicates, each carrying the
rejections' reasons) on a run store in a temporary directory, arith task, `search.mode=random` (no ranked
history: every round is asked like a first round, so rounds are repeats, not feedback), no training. Every
candidate goes through the run's checks: static, the sandboxed probe suite, source and behaviour
de-duplication (a copy of the prompt's example included); `--answer-format` sets the task's answer format (the
prompt, the probes and the base rewards follow it). `--refills 0` is the loop without refills (the
2026-12-02 measurements, made with `--calls` x `--batch` requests and no refill, equal `--rounds` x
`--per-round` with `--refills 0`). Writes benchmarks/results/<date>-proposer-funnel-<model>-<style>-refills<R>.json
with the funnel per round (`search/funnel.py`, read from the store) and in total, per-candidate verdicts and their
classes (`verdict_class`: constant, copy of the example, out of bounds, ...), the notes each refill ask carried,
tokens/s and the server's load time; `--baseline FILE` copies an earlier result's funnel beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import write_result  # noqa: E402


def verdict_class(state: str, reason: str | None) -> str | None:
    """What became of one candidate, in a few words (None: an item dropped as beyond the candidates wanted)."""
    reason = reason or ""
    if state == "accepted":
        return "accepted"
    if "beyond the" in reason and "still wanted" in reason:
        return None
    if "prompt's example" in reason:
        return "copy of the example"
    if reason.startswith("dedup:") or "same normalized source" in reason:
        return "twin of another candidate"
    if "constant reward" in reason:
        return "constant"
    if "|score| must be <=" in reason:
        return "out of bounds"
    if "call failed" in reason and "error: " in reason:
        return "call failed: " + reason.split("error: ", 1)[1].split(":", 1)[0]
    if reason.startswith("static:"):
        return "static: " + reason.split(": ", 2)[-1].split(" is not allowed")[0][:40]
    return reason.split(":", 1)[0] or state


_SUM = ("calls", "proposed", "parsed", "unreadable", "duplicates", "candidates", "passed_static", "passed_probes",
        "refills", "refilled", "completion_tokens")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen-coder-0.5b")
    ap.add_argument("--style", default="code", choices=["code", "item", "compact", "full"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--per-round", type=int, default=2, help="search.candidates_per_round")
    ap.add_argument("--refills", type=int, default=2, help="search.refills")
    ap.add_argument("--batch", type=int, default=None, help="proposer.batch_size (default: --per-round)")
    ap.add_argument("--temperature", type=float, default=0.6)
    ap.add_argument("--max-tokens", type=int, default=2048)
    ap.add_argument("--json-mode", default="auto", choices=["auto", "schema", "grammar", "object", "off"])
    ap.add_argument("--template-dir", default=None, help="proposer.template_dir: a prompt variant to measure")
    ap.add_argument("--threads", type=int, default=None, help="proposer.serve_threads (default: all cores)")
    ap.add_argument("--deadline-s", type=float, default=None,
                    help="start no further round after this many seconds (the rounds done are reported)")
    ap.add_argument("--baseline", default=None, help="an earlier result JSON whose funnel to show beside this one")
    ap.add_argument("--tag", default=None, help="appended to the result's file name (a variant of the same style)")
    ap.add_argument("--answer-format", default=None, choices=["tags", "boxed", "hashes", "answer_is"],
                    help="task.answer_format (default: the task's own, tags for arith); the probes use it too")
    args = ap.parse_args()

    from rewardsearch.config import Config, ProposerConfig
    from rewardsearch.propose.base import make_proposer
    from rewardsearch.propose.serve import serving
    from rewardsearch.search.funnel import round_funnel
    from rewardsearch.search.loop import Search
    from rewardsearch.store import Store
    from rewardsearch.tasks import load_task

    pcfg = ProposerConfig(name="llm", serve="llama.cpp", model=args.model, prompt_style=args.style,
                          batch_size=args.batch or args.per_round, max_calls_per_round=1,
                          temperature=args.temperature, max_tokens=args.max_tokens, json_mode=args.json_mode,
                          timeout_s=900, template_dir=args.template_dir, serve_threads=args.threads)
    cfg = Config.model_validate({"search": {"rounds": args.rounds, "candidates_per_round": args.per_round,
                                            "refills": args.refills, "mode": "random"},
                                 "task": {"answer_format": args.answer_format},
                                 "executor": {"preflight": False}})
    run_dir = Path(tempfile.mkdtemp(prefix=f"proposer-funnel-{args.model.replace('/', '_')}-"))
    store = Store.in_dir(run_dir)
    server: dict[str, Any] = {}
    t0 = time.time()
    rounds_done = 0
    with serving(pcfg, run_dir / "proposer-server.log", on_start=server.update) as served:
        search = Search(run_dir, cfg.model_copy(update={"proposer": served}), store)
        search.task = load_task(cfg.task, cfg.seed)
        search.proposer = make_proposer(served, store=store)
        for r in range(1, args.rounds + 1):
            if args.deadline_s is not None and time.time() - t0 > args.deadline_s:
                print(f"--deadline-s={args.deadline_s:g} passed: {r - 1} of {args.rounds} rounds done", flush=True)
                break
            search.propose_and_check(r)
            rounds_done = r
            for c in store.candidates(round=r):
                print(f"round {r}{' ' + c['meta']['refill'] if c['meta'].get('refill') else ''}: {c['name']}: "
                      f"{c['state']} {c['reason'] or ''}"[:220], flush=True)
    wall = time.time() - t0
    rounds = round_funnel(store)
    total = {k: sum(row[k] for row in rounds) for k in _SUM}
    total["accepted"] = sum(c["state"] == "accepted" for c in store.candidates())
    calls = store.proposer_calls()
    ok = [c for c in calls if c["status"] == "ok"]
    seconds = sum(c["latency_s"] for c in ok)
    verdicts = [{"round": c["round"], "refill": c["meta"].get("refill"), "name": c["name"],
                 "description": c["description"], "state": c["state"], "reason": c["reason"], "flags": c["flags"],
                 "source": c["source"]} for c in store.candidates()]
    for call in ok:  # items dropped at parse time (unreadable, source duplicates) are verdicts too
        for d in call["dropped"]:
            verdicts.append({"round": call["round"], "refill": call["meta"].get("refill"), "name": d.get("name"),
                             "state": "dropped at parse", "reason": d["reason"]})
    classes: dict[str, int] = {}
    for v in verdicts:
        if (what := verdict_class(v["state"], v["reason"])) is not None:
            classes[what] = classes.get(what, 0) + 1
    refill_notes = []
    for call in ok:
        if call["meta"].get("refill"):
            user = next(m["content"] for m in call["request"]["messages"] if m["role"] == "user")
            lines = user.split("Problems with your previous answer:\n", 1)[-1].split("\n\n", 1)[0].splitlines() \
                if "Problems with your previous answer:" in user else []
            refill_notes.append({"round": call["round"], "refill": call["meta"]["refill"],
                                 "notes": [ln[2:] for ln in lines if ln.startswith("- ")]})
    baseline = None
    if args.baseline:
        b = json.loads(Path(args.baseline).read_text())
        baseline = {"file": args.baseline, "date": b.get("date"), "calls": b.get("calls"), "batch": b.get("batch"),
                    "temperature": b.get("temperature"), "funnel": b.get("funnel"),
                    "tokens_per_s": b.get("tokens_per_s"), "wall_s": b.get("wall_s")}
    result = {
        "model": args.model, "style": args.style, "rounds": args.rounds, "rounds_done": rounds_done,
        "deadline_s": args.deadline_s, "per_round": args.per_round,
        "refills": args.refills, "batch": args.batch or args.per_round, "temperature": args.temperature,
        "max_tokens": args.max_tokens, "json_mode": args.json_mode, "template_dir": args.template_dir,
        "tag": args.tag, "answer_format": search.task.answer_format.name,
        "mode": "random (no history; each round asked like a first round)", "server": server,
        "run_dir": str(run_dir), "funnel": total, "funnel_by_round": rounds, "baseline": baseline,
        "json_modes": [c.get("meta", {}).get("json_mode") for c in calls],
        "statuses": [c["status"] for c in calls],
        "prompt_tokens": [c["prompt_tokens"] for c in ok], "completion_tokens": [c["completion_tokens"] for c in ok],
        "request_s": [round(c["latency_s"], 1) for c in ok],
        "tokens_per_s": round(total["completion_tokens"] / seconds, 2) if seconds else None,
        "wall_s": round(wall, 1), "verdict_classes": dict(sorted(classes.items(), key=lambda kv: -kv[1])),
        "refill_notes": refill_notes, "verdicts": verdicts,
    }
    print(json.dumps({k: result[k] for k in ("funnel", "tokens_per_s", "wall_s")}))
    tag = f"-{args.tag}" if args.tag else ""
    write_result(f"proposer-funnel-{args.model.replace('/', '_')}-{args.style}{tag}-refills{args.refills}", result)


if __name__ == "__main__":
    main()
