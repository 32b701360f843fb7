"""The Markdown report: verdict, leaderboard, rounds, final arms and cost, from the results dict (no statistics here)."""

from __future__ import annotations

from typing import Any

from rewardsearch.search.hacking import arrow
from rewardsearch.search.ranking import rank_key


def _fmt_eval(e: dict[str, Any] | None) -> tuple[str, str, str]:
    if not e:
        return ("-", "-", "-")
    return (f"{e['accuracy']:.3f}", f"[{e['ci95'][0]:.3f}, {e['ci95'][1]:.3f}]", f"{e['extraction_rate']:.2f}")


def leaderboard_markdown(status: dict[str, Any]) -> str:
    rows = status["candidates"]
    ranked = sorted(rows, key=rank_key)
    lines = [
        f"# rewardsearch run: {status['run_dir']}",
        "",
        f"Status **{status['status']}**, rounds done {status['rounds_done']}/{status['rounds_total']}, "
        f"task `{status['task']}`, model `{status['model']}`, proposer `{status['proposer']}`, "
        f"config hash `{status['config_hash']}`.",
        "",
        "Ranked on the **dev** split (accuracy = number inside the solution tags equals the gold answer; "
        "95% Wilson CI). The published reference's F1 is 2*acc/(1+acc) and adds nothing beyond accuracy.",
        "",
        "| rank | name | origin | round | state | dev acc | 95% CI | extraction | flex acc | train s | flags |",
        "| ---: | --- | --- | ---: | --- | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for i, r in enumerate(ranked, 1):
        acc, ci, ext = _fmt_eval(r["dev"])
        flex = f"{r['dev']['flex_accuracy']:.3f}" if r["dev"] else "-"
        wall = f"{r['trial']['wall_s']:.0f}" if r.get("trial") and r["trial"].get("wall_s") else "-"
        state = r["state"] + (f" ({r['reason'][:60]})" if r.get("reason") else "")
        lines.append(
            f"| {i} | `{r['name']}` | {r['origin']} | {r['round']} | {state} | {acc} | {ci} | {ext} | {flex} | "
            f"{wall} | {', '.join(r['flags']) or '-'} |"
        )
    return "\n".join(lines) + "\n"


def shift_markdown(status: dict[str, Any]) -> str:
    """Per trial: the base model's dev numbers against the trained model's, the training trend, the hacking flag."""
    bm = status.get("base_model") or {}
    d = bm.get("dev")
    lines = ["## Before and after training (dev)", ""]
    if d:
        length = f"{d['mean_length']:.0f} chars" if d.get("mean_length") is not None else "-"
        lines.append(f"Base model, no training: strict accuracy {d['accuracy']:.3f}, flexible {d['flex_accuracy']:.3f}, "
                     f"mean completion length {length} (n={d['n']}).")
    else:
        lines.append(f"Base model evaluation: {bm.get('state', 'pending')}"
                     + (f" ({bm['reason'][:120]})" if bm.get("reason") else "") + "; training curves only.")
    lines += ["", "Dev columns: base model -> trained (length in characters, greedy). Training columns: mean over "
              "the first -> last fifth of the logged GRPO steps (length in tokens, sampled).", "",
              "| name | strict acc | flex acc | dev length | training reward | training length | hacking |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in sorted(status["candidates"], key=rank_key):
        sh = r.get("shift")
        if not sh:
            continue
        hack = "; ".join(f.removeprefix("hacking: ") for f in r["flags"] if f.startswith("hacking:")) or "-"
        lines.append(
            f"| `{r['name']}` | {arrow(sh['accuracy'], 'base', 'after', '.3f')} | "
            f"{arrow(sh['flex_accuracy'], 'base', 'after', '.3f')} | {arrow(sh['length'], 'base', 'after', '.0f')} | "
            f"{arrow(sh['reward'], 'start', 'end', '.2f')} | {arrow(sh['train_length'], 'start', 'end', '.0f')} | "
            f"{hack} |"
        )
    return "\n".join(lines) + "\n"


def screening_markdown(status: dict[str, Any], screening: dict[str, Any]) -> str:
    """Per candidate: steps trained, the rung reached and why it stopped; what halving and the pre-screen saved."""
    s = screening
    lines = ["## Successive halving and pre-screen", "",
             f"Rungs {s['rungs']} (steps), keep {s['keep']}, promotion within noise "
             f"{'on' if s['keep_within_noise'] else 'off'}; rungs before the last evaluate the first "
             f"{s['rung_dev_size']} dev items. Candidate trials trained {s['steps_trained']} optimizer steps of the "
             f"{s['steps_full_budget']} a full budget for each would have taken.", "",
             "| name | state | steps | rung | why it stopped |", "| --- | --- | ---: | ---: | --- |"]
    for r in status["candidates"]:
        if r.get("rung") is None:
            continue
        lines.append(f"| `{r['name']}` | {r['state']} | {r['steps'] if r['steps'] is not None else '-'} | "
                     f"{r['rung']}/{r['rungs_total']} | {(r['stopped'] or '-')[:200]} |")
    p = s["prescreen"]
    lines += [""]
    if not p["enabled"]:
        lines.append("Pre-screen: off (`prescreen.enabled`).")
    else:
        pool = p["pool"] or {}
        saved = f"{p['est_saved_s']:.0f} s" if p["est_saved_s"] is not None else "-"
        lines.append(f"Pre-screen: pool of {pool.get('groups', '?')} prompts x {pool.get('samples', '?')} base-policy "
                     f"samples (flexible correctness {_f(pool.get('flexible_rate'))}, {pool.get('mixed_groups', '?')} "
                     f"groups with right and wrong); {p['checked']} candidates scored, {len(p['rejected'])} rejected; "
                     f"estimated trial time saved {saved} (rejected x mean candidate trial).")
        lines += [f"- `{x['name']}`: {x['reason']}" for x in p["rejected"]]
        if p.get("would_reject"):
            lines.append(f"{len(p['would_reject'])} more would have been rejected (`prescreen.reject=false`: recorded, "
                         "trained anyway):")
            lines += [f"- `{x['name']}`: {x['reason']}" for x in p["would_reject"]]
    return "\n".join(lines) + "\n"


def _ci(pair: list[float] | None) -> str:
    return f"[{pair[0]:.3f}, {pair[1]:.3f}]" if pair else "-"


def _f(x: float | None, fmt: str = ".3f") -> str:
    return format(x, fmt) if isinstance(x, int | float) else "-"


def report_markdown(results: dict[str, Any], final: list[dict[str, Any]]) -> str:
    lines = []
    if results["selection_split"] == "test":
        lines += ["> **Selection used the test split** (as the published paper did): reported test accuracy is "
                  "inflated.", ""]
    lines.append(leaderboard_markdown(results["status"]).rstrip("\n"))
    lines += ["", shift_markdown(results["status"]).rstrip("\n")]
    if results["cost"].get("screening"):
        lines += ["", screening_markdown(results["status"], results["cost"]["screening"]).rstrip("\n")]
    w = results.get("winner")
    lines += ["", "## Verdict", ""]
    if not w:
        lines.append("No final stage yet (`rewardsearch ensemble DIR`): no winner is declared from one seed on dev.")
    else:
        lines.append(f"**{w['message']}**")
        c = w.get("comparison")
        if c and c.get("per_seed_diff"):
            per_seed = ", ".join(f"{v:+.3f}" for v in c["per_seed_diff"])
            lines.append(f"Per-seed test differences: {per_seed}; interval {_ci(c['ci'])} ({c['test']}).")
        if w.get("note"):
            lines.append(f"_{w['note']}_")
    lines += ["", "## Accuracy by round (dev)", "", "| round | evaluated | mean | best | worst | sd |",
              "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results["rounds"]:
        lines.append(f"| {r['round']} | {r['n']} | {_f(r['mean'])} | {_f(r['best'])} | {_f(r['worst'])} | {_f(r['sd'])} |")
    funnel = results["status"].get("funnel") or []
    if funnel:
        lines += ["", "## Candidate funnel by round", "",
                  "| round | requests | proposed | parsed | passed static | passed probes | duplicates | trained | full budget "
                  "| refills (candidates) | tokens/s |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for x in funnel:
            tps = f"{x['tokens_per_s']:.1f}" if x["tokens_per_s"] is not None else "-"
            lines.append(f"| {x['round']} | {x['calls']} | {x['proposed']} | {x['parsed']} | {x['passed_static']} | "
                         f"{x['passed_probes']} | {x['duplicates']} | {x['trained']} | {x.get('last_rung', '-')} | "
                         f"{x.get('refills', '-')} ({x.get('refilled', '-')}) | {tps} |")
    if results["arms"]:
        lines += ["", "## Final arms (mean over seeds; CI = bootstrap BCa over items)", "",
                  "| arm | kind | k | dev acc | test acc | test sd | test BCa 95% |",
                  "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
        for a in results["arms"]:
            d, t = a["dev"], a["test"]
            lines.append(
                f"| {a['label']} | {a['kind']} | {len(a['members'])} | "
                f"{_f(d['seed_summary']['mean']) if d else '-'} | {_f(t['seed_summary']['mean']) if t else 'pending'} | "
                f"{_f(t['seed_summary']['sd']) if t else '-'} | {_ci(t['bootstrap']['bca']) if t else '-'} |"
            )
    if final:
        lines += ["", "## Closing table (test)", "",
                  "| role | arm | k | seeds | test acc | BCa 95% | p Holm vs best ensemble | p Holm vs base "
                  "| extraction | flex acc |",
                  "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
        for r in final:
            ve, vb = r["vs_best_ensemble"], r["vs_base"]
            lines.append(
                f"| {r['role']} | {r['label']} | {r['k']} | {len(r['seeds'])} | {_f(r['test_accuracy'])} | "
                f"{_ci(r['ci95_bca'])} | {_f(ve['p_holm'], '.3g') if ve else '-'} | {_f(vb['p_holm'], '.3g') if vb else '-'} "
                f"| {_f(r.get('test_extraction_rate'))} | {_f(r.get('test_flex_accuracy'))} |"
            )
    k = results["cost"]
    lines += ["", "## Cost", "",
              f"Trial process time {k['trial_job_s']:.0f} s on {', '.join(k['devices']) or '-'}; proposer "
              f"{k['proposer_wall_s']:.1f} s, {k['proposer_calls']} recorded calls "
              f"{k['proposer_usage'] or ''}.", "",
              f"Environment: seed {results['environment']['seed']}, config `{results['environment']['config_hash']}`, "
              f"git `{results['environment']['git']['commit']}`. Full manifest and every vector: `results.json`."]
    return "\n".join(lines) + "\n"
