"""How many candidates a served local model writes that survive the checks: the proposer side of a run, alone.

    PYTHONPATH=src python3 benchmarks/proposer_funnel.py --model qwen-coder-0.5b [--style code] [--calls 3]

Serves `--model` with llama.cpp exactly as `proposer.serve=llama.cpp` does, makes `--calls` round-1 requests of
`--batch` candidates each (arith task, no feedback yet, as the first round of a run), and puts every candidate
through the run's checks: parse, static, the sandboxed probe suite, then source and behaviour de-duplication
(the probe score vector, as `search/dedup.py`). No training: a prompt variant costs minutes, not a run.
Writes benchmarks/results/<date>-proposer-funnel-<model>-<style>.json with the funnel, per-candidate verdicts,
tokens/s and the server's load time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen-coder-0.5b")
    ap.add_argument("--style", default="code", choices=["code", "compact", "full"])
    ap.add_argument("--calls", type=int, default=3)
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--temperature", type=float, default=0.6)
    ap.add_argument("--max-tokens", type=int, default=2048)
    ap.add_argument("--json-mode", default="auto", choices=["auto", "schema", "grammar", "object", "off"])
    ap.add_argument("--template-dir", default=None, help="proposer.template_dir: a prompt variant to measure")
    args = ap.parse_args()

    from rewardsearch.config import ProposerConfig, SandboxConfig, TaskConfig
    from rewardsearch.propose.base import RoundContext
    from rewardsearch.propose.llm import LLMProposer
    from rewardsearch.propose.serve import serving
    from rewardsearch.sandbox import check_reward
    from rewardsearch.search.dedup import behaviour_key
    from rewardsearch.tasks import load_task

    task = load_task(TaskConfig(), 0)
    cfg = ProposerConfig(name="llm", serve="llama.cpp", model=args.model, prompt_style=args.style,
                         batch_size=args.batch, max_calls_per_round=1, temperature=args.temperature,
                         max_tokens=args.max_tokens, json_mode=args.json_mode, timeout_s=900,
                         template_dir=args.template_dir)
    samples = [(p.question, p.answer) for p in task.split("train")[:8]]
    funnel = {"proposed": 0, "parsed": 0, "duplicates": 0, "passed_static": 0, "passed_probes": 0, "distinct": 0}
    verdicts: list[dict[str, Any]] = []
    server: dict[str, Any] = {}
    seen_src: set[str] = set()
    seen_behaviour: set[str] = set()
    t0 = time.time()
    with serving(cfg, Path("/tmp") / f"proposer-funnel-{args.model.replace('/', '_')}.log",
                 on_start=server.update) as served:
        prop = LLMProposer(served)
        for ex in prop.shown_examples():  # a copy of the prompt's example is a duplicate, as in a run
            probe = check_reward(ex, SandboxConfig(), samples, fmt=task.answer_format)[-1]
            seen_behaviour.add(behaviour_key(probe.details["scores"]))
        for i in range(args.calls):
            ctx = RoundContext(round=1, seed=i, task_card=task.card(), samples=task.split("train")[:3])
            specs = prop.propose(ctx, args.batch)
            call = prop.calls[-1]
            funnel["proposed"] += len(call["parsed"]) + len(call["dropped"])
            funnel["parsed"] += len(specs)
            for d in call["dropped"]:
                verdicts.append({"call": i, "name": d["name"], "stage": "parse", "reason": d["reason"]})
                if d["reason"].startswith("duplicate"):
                    funnel["parsed"] += 1
                    funnel["duplicates"] += 1
            for s in specs:
                if s.id in seen_src:
                    funnel["duplicates"] += 1
                    verdicts.append({"call": i, "name": s.name, "stage": "dedup", "reason": "same source"})
                    continue
                seen_src.add(s.id)
                results = check_reward(s, SandboxConfig(), samples, fmt=task.answer_format)
                failed = next((r for r in results if not r.ok), None)
                funnel["passed_static"] += results[0].ok
                probe = results[-1] if results[-1].stage == "probe" else None
                funnel["passed_probes"] += bool(probe and probe.ok)
                verdict: dict[str, Any] = {"call": i, "name": s.name, "description": s.description,
                                           "source": s.source, "flags": probe.flags if probe else []}
                if failed:
                    verdict |= {"stage": failed.stage, "reason": failed.reason}
                else:
                    key = behaviour_key(probe.details["scores"]) if probe else ""
                    if key in seen_behaviour:
                        funnel["duplicates"] += 1
                        verdict |= {"stage": "dedup", "reason": "same scores on every probe (as an earlier "
                                                                "candidate or the prompt's example)"}
                    else:
                        seen_behaviour.add(key)
                        funnel["distinct"] += 1
                        verdict |= {"stage": "accepted", "reason": None}
                verdicts.append(verdict)
                print(f"call {i}: {s.name}: {verdict['stage']} {verdict['reason'] or ''}"[:200], flush=True)
    ok = [c for c in prop.calls if c["status"] == "ok"]
    tokens = sum(c["completion_tokens"] for c in ok)
    seconds = sum(c["latency_s"] for c in ok)
    result = {
        "model": args.model, "style": args.style, "calls": args.calls, "batch": args.batch,
        "temperature": args.temperature, "max_tokens": args.max_tokens, "json_mode": args.json_mode,
        "template_dir": args.template_dir, "server": server,
        "json_modes": [c.get("meta", {}).get("json_mode") for c in prop.calls],
        "statuses": [c["status"] for c in prop.calls], "funnel": funnel,
        "prompt_tokens": [c["prompt_tokens"] for c in ok], "completion_tokens": [c["completion_tokens"] for c in ok],
        "request_s": [round(c["latency_s"], 1) for c in ok],
        "tokens_per_s": round(tokens / seconds, 2) if seconds else None, "wall_s": round(time.time() - t0, 1),
        "verdicts": verdicts,
    }
    print({k: result[k] for k in ("funnel", "tokens_per_s", "wall_s", "statuses")})
    write_result(f"proposer-funnel-{args.model.replace('/', '_')}-{args.style}", result)


if __name__ == "__main__":
    main()
