"""The `rewardsearch` command line (typer). Commands parse arguments and hand sections of the config to stages."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Search for the reward functions that make GRPO post-training work.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


def _fail(msg: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _open_run(run_dir: Path):
    from rewardsearch.store import Store, StoreError

    if not (run_dir / "run.sqlite").is_file():
        _fail(f"{str(run_dir)!r} is not a run directory (no run.sqlite); start one with `rewardsearch run --out DIR`")
    try:
        return Store.in_dir(run_dir)
    except StoreError as exc:
        _fail(str(exc))


def _drive(run_dir: Path, store, cfg) -> None:
    from rewardsearch.execute.base import ExecutorError
    from rewardsearch.models import ModelNotAvailable
    from rewardsearch.propose.base import ProposerError, ProposerNotAvailable
    from rewardsearch.propose.serve import serving
    from rewardsearch.search.loop import RunLocked, RunStopped, Search, run_lock

    def served(info: dict) -> None:
        store.set_meta("proposer_server", info)
        store.event("proposer_server_started", **info)
        err.print(f"serving {info['model']} with llama.cpp at {info['base_url']} ({info['threads']} threads, "
                  f"loaded in {info['load_s']:.1f}s; log {run_dir / 'proposer-server.log'})", highlight=False)

    try:
        with run_lock(run_dir):
            # the proposer's own server (proposer.serve) lives for the search alone, not for the final stage
            with serving(cfg.proposer, run_dir / "proposer-server.log", on_start=served) as proposer_cfg:
                Search(run_dir, cfg.model_copy(update={"proposer": proposer_cfg}), store, console=err).run()
            if cfg.ensemble.after_run:  # e.g. the paper preset: one command from search to report
                _run_final_stage(run_dir, store, cfg)
    except (RunLocked, ModelNotAvailable) as exc:
        _fail(str(exc))
    except (ProposerError, ProposerNotAvailable, RunStopped, ExecutorError) as exc:
        store.set_meta("status", "failed")
        store.set_meta("stopped", str(exc))
        _fail(f"{exc}; what the run has so far is kept: fix it, then `rewardsearch resume {run_dir}`")
    except KeyboardInterrupt:
        store.set_meta("status", "interrupted")
        err.print(f"interrupted; continue with `rewardsearch resume {run_dir}`")
        raise typer.Exit(130) from None
    err.print(f"finished. Leaderboard: `rewardsearch status {run_dir}`; report: `rewardsearch report {run_dir}`")


@app.command()
def run(
    overrides: Annotated[list[str] | None, typer.Argument(help="KEY=VALUE config overrides")] = None,
    preset: Annotated[str | None, typer.Option(help="smoke | gpu | paper")] = None,
    config: Annotated[Path | None, typer.Option(help="a YAML config file")] = None,
    out: Annotated[Path | None, typer.Option(help="run directory (default runs/<time>)")] = None,
) -> None:
    """Start a search in a new run directory."""
    from rewardsearch.config import ConfigError, load_config
    from rewardsearch.store import Store

    try:
        cfg = load_config(preset=preset, path=config, overrides=overrides or [])
    except ConfigError as exc:
        _fail(str(exc))
    run_dir = out or Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    if (run_dir / "run.sqlite").exists():
        from rewardsearch.store import StoreError, _check_file

        try:
            _check_file(run_dir / "run.sqlite")
        except StoreError as exc:
            _fail(str(exc))
        _fail(f"{str(run_dir)!r} already holds a run; continue it with `rewardsearch resume {run_dir}` "
              "or choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    store = Store.in_dir(run_dir)
    store.set_meta("config", cfg.model_dump(mode="json"))
    store.set_meta("config_hash", cfg.hash())
    store.set_meta("argv", sys.argv[1:])
    for item in overrides or []:
        err.print(f"override: {item}", highlight=False)
    _drive(run_dir, store, cfg)


@app.command()
def resume(
    run_dir: Annotated[Path, typer.Argument(help="run directory")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="executor.KEY=VALUE: where this session runs trials (e.g. executor.name=ray)")
    ] = None,
) -> None:
    """Continue a stopped or killed run without redoing finished work, on the same or another executor."""
    from rewardsearch.config import Config, ConfigError, override_config

    store = _open_run(run_dir)
    cfg = Config.model_validate(store.get_meta("config"))
    if overrides:
        # where trials run changes nothing they compute: the run's config (and its hash) stay as they were
        try:
            cfg = override_config(cfg, overrides, allowed=("executor.",))
        except ConfigError as exc:
            _fail(str(exc))
        store.event("resume_overrides", overrides=list(overrides))
        for item in overrides:
            err.print(f"override (this session): {item}", highlight=False, markup=False)
    if store.get_meta("status") == "done":
        if cfg.ensemble.after_run and store.get_meta("final_status") != "done":
            from rewardsearch.config import override_config
            from rewardsearch.search.loop import RunLocked, run_lock

            cfg = override_config(cfg, list(store.get_meta("final_overrides") or []), allowed=FINAL_OVERRIDABLE)
            try:  # the search finished, its final stage did not: continue that (same lock, same settings)
                with run_lock(run_dir):
                    _run_final_stage(run_dir, store, cfg)
            except RunLocked as exc:
                _fail(str(exc))
            return
        err.print(f"run {run_dir} is already finished")
        return
    store.event("resumed")
    _drive(run_dir, store, cfg)


@app.command()
def status(
    run_dir: Annotated[Path, typer.Argument(help="run directory")],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """The run's state and leaderboard."""
    from rewardsearch.search.hacking import arrow
    from rewardsearch.search.status import run_status

    st = run_status(run_dir, _open_run(run_dir))
    if as_json:
        print(json.dumps(st, indent=1))
        return
    bm = st["base_model"]
    before = (f"base model (no training): dev acc {bm['dev']['accuracy']:.3f}, flex {bm['dev']['flex_accuracy']:.3f}"
              + (f", length {bm['dev']['mean_length']:.0f} chars" if bm["dev"].get("mean_length") is not None else "")
              if bm["dev"] else f"base model: {bm['state']}" + (f" ({bm['reason'][:80]})" if bm["reason"] else ""))
    table = Table(title=f"{run_dir}: {st['status']}, rounds {st['rounds_done']}/{st['rounds_total']}\n{before}")
    # "base->dev": the base model's dev eval, then this trial's; "reward": training reward, first -> last steps
    # "rung": the successive-halving rung reached, of all; "steps": optimizer steps trained
    for col in ("name", "origin", "round", "state", "steps", "rung", "dev acc", "95% CI", "extract", "flex base->dev",
                "length base->dev (chars)", "reward", "flags"):
        table.add_column(col, no_wrap=col in ("name", "dev acc", "95% CI"))
    for r in st["candidates"]:
        d, sh = r["dev"], r.get("shift") or {}
        table.add_row(
            r["name"], r["origin"], str(r["round"]), r["state"] + (f": {r['reason'][:50]}" if r["reason"] else ""),
            str(r["steps"]) if r.get("steps") is not None else "-",
            f"{r['rung']}/{r['rungs_total']}" if r.get("rung") else "-",
            f"{d['accuracy']:.3f}" if d else "-", f"[{d['ci95'][0]:.2f}, {d['ci95'][1]:.2f}]" if d else "-",
            f"{d['extraction_rate']:.2f}" if d else "-", arrow(sh.get("flex_accuracy"), "base", "after", ".3f"),
            arrow(sh.get("length"), "base", "after", ".0f"), arrow(sh.get("reward"), "start", "end", ".2f"),
            ", ".join(r["flags"]),
        )
    Console().print(table)
    for tid, r in (st.get("running") or {}).items():
        print(f"running: {tid} attempt {r.get('attempt')} on {r.get('host')} device {r.get('device')} "
              f"for {r.get('for_s', 0):.0f}s (log {r.get('log')})")
    if st.get("stopped"):
        print(f"stopped: {st['stopped']}")


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="run directory")]) -> None:
    """Write DIR/report/ (index.html, report.md, results.json) with statistics and figures."""
    from rewardsearch.report import write_report

    store = _open_run(run_dir)
    t0 = time.time()
    out = write_report(run_dir, store)
    err.print(f"wrote {out / 'index.html'}, {out / 'report.md'}, {out / 'results.json'} ({time.time() - t0:.1f}s)")
    results = json.loads((out / "results.json").read_text())
    if results["arms"]:
        _print_final_table(results)


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="a Python file defining one reward function")],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    entrypoint: Annotated[str | None, typer.Option(help="function name (default: the last top-level def)")] = None,
    skip_static: Annotated[
        bool, typer.Option("--skip-static", help="testing aid: skip the static check to exercise the OS sandbox")
    ] = False,
    level: Annotated[str, typer.Option(help="sandbox.level: auto|strict|landlock|seccomp|process")] = "auto",
    allow_weak: Annotated[bool, typer.Option("--allow-weak", help="sandbox.allow_weak: permit level process")] = False,
) -> None:
    """Static check + sandbox dry run (probe suite) of one reward file.

    --json prints {verdict, stage, reason, flags, sandbox_level, latency_ms, ...}; exit status 0 accepted,
    1 rejected, 2 when the sandbox cannot run here (verdict "error").
    """
    import ast

    from pydantic import ValidationError

    from rewardsearch.config import SandboxConfig, TaskConfig
    from rewardsearch.rewards.spec import RewardSpec
    from rewardsearch.sandbox import SandboxUnavailable, check_reward, resolve_level
    from rewardsearch.tasks import load_task

    if not file.is_file():
        _fail(f"reward file {str(file)!r} does not exist")
    try:
        cfg = SandboxConfig(level=level, allow_weak=allow_weak)  # type: ignore[arg-type]
    except ValidationError:
        _fail(f"--level {level!r}: expected auto, strict, landlock, seccomp or process")
    source = file.read_text(errors="replace")
    if entrypoint is None:
        try:
            defs = [n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)]
        except (SyntaxError, ValueError, RecursionError):
            defs = []
        entrypoint = defs[-1] if defs else file.stem
    spec = RewardSpec(name=entrypoint, source=source, origin="files", entrypoint=entrypoint)
    task = load_task(TaskConfig(), 0)
    samples = [(p.question, p.answer) for p in task.split("train")[:8]]
    t0 = time.time()
    try:
        sandbox_level = resolve_level(cfg)
        results = check_reward(spec, cfg, samples, skip_static=skip_static)
    except SandboxUnavailable as exc:
        if as_json:
            print(json.dumps({"verdict": "error", "stage": "sandbox", "reason": str(exc), "flags": [],
                              "sandbox_level": None, "latency_ms": None}))  # fmt: skip
        _fail(str(exc))
    failed = next((r for r in results if not r.ok), None)
    flags = sorted({f for r in results for f in r.flags})
    probe = next((r for r in results if r.stage in ("load", "probe")), None)
    details = probe.details if probe else {}
    verdict = {
        "verdict": "rejected" if failed else "accepted",
        "stage": failed.stage if failed else results[-1].stage,
        "reason": failed.reason if failed else None,
        "flags": flags,
        "sandbox_level": sandbox_level,
        "latency_ms": details.get("p50_latency_ms"),
        "latency_p99_ms": details.get("p99_latency_ms"),
        "sandbox_mechanisms": details.get("sandbox_mechanisms"),
        "static_skipped": skip_static,
        "evidence": details.get("evidence", {}),
        "wall_s": round(time.time() - t0, 3),
    }
    if as_json:
        print(json.dumps(verdict))
    else:
        color = "red" if failed else "green"
        err.print(f"sandbox level: {sandbox_level}" + (" [bold red](weak: no OS isolation)[/]" if sandbox_level == "process" else ""))
        err.print(f"[{color}]{verdict['verdict']}[/] at {verdict['stage']}"
                  + (f": {verdict['reason']}" if failed else "") + (f"; flags: {', '.join(flags)}" if flags else ""))
    raise typer.Exit(1 if failed else 0)


@app.command("eval")
def eval_cmd(
    model: Annotated[str, typer.Option(help="model spec: embedded, HF id, directory or .gguf")] = "embedded",
    adapter: Annotated[Path | None, typer.Option(help="LoRA adapter directory")] = None,
    task: Annotated[str, typer.Option(help="arith | gsm8k | file | hf | a plugin name | package.module:Class")] = "arith",
    split: Annotated[str, typer.Option(help="train | dev | test")] = "dev",
    limit: Annotated[int, typer.Option(help="number of problems", min=1)] = 64,
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 256,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    data_dir: Annotated[str | None, typer.Option(help="gsm8k: directory with train/test.jsonl")] = None,
    seed: Annotated[int, typer.Option(help="task seed (fixes the splits)")] = 0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    overrides: Annotated[
        list[str] | None, typer.Argument(help="task.KEY=VALUE settings, e.g. task.path=p.jsonl task.answer_format=boxed")
    ] = None,
) -> None:
    """Evaluate a model (and adapter) on a task split with batched greedy decoding."""
    from dataclasses import asdict

    from rewardsearch.config import Config, ConfigError, ModelConfig, override_config
    from rewardsearch.evaluate.generate import generate, load_for_eval
    from rewardsearch.evaluate.metrics import score
    from rewardsearch.models import ModelNotAvailable, pick_device, pick_dtype, resolve_model
    from rewardsearch.tasks import load_task

    if split not in ("train", "dev", "test"):
        _fail(f"--split {split!r}: expected train, dev or test")
    if device not in ("auto", "cpu", "cuda"):
        _fail(f"--device {device!r}: expected auto, cpu or cuda")
    if adapter is not None and not (adapter / "adapter_config.json").is_file():
        _fail(f"--adapter {str(adapter)!r}: no adapter_config.json there (expected a PEFT adapter directory)")
    try:
        # the same keys and checks as `run`, limited to the task section; validated together, so
        # `--task file task.path=...` is checked as one
        items = [f"task.name={task}", *([f"task.data_dir={data_dir}"] if data_dir else []), *(overrides or [])]
        tcfg = override_config(Config(), items, allowed=("task.",)).task
        mcfg = ModelConfig(name=model)
        model_dir = resolve_model(mcfg)
        dev = pick_device(device)
    except (ConfigError, ModelNotAvailable, RuntimeError, ValueError) as exc:
        _fail(str(exc).splitlines()[0])
    try:
        t = load_task(tcfg, seed)
        problems = t.split(split)[:limit]  # type: ignore[arg-type]
    except (OSError, ValueError, ImportError) as exc:  # a missing data file, a bad row, a plugin that fails
        _fail(str(exc).splitlines()[0])
    m, tok = load_for_eval(model_dir, adapter, dev, pick_dtype("auto", dev))
    t0 = time.time()
    texts = generate(m, tok, [t.prompt(p) for p in problems], max_new_tokens, batch_size)
    rec = score(t, problems, texts, trial_id=str(adapter or model), split=split, wall_s=time.time() - t0)
    d = asdict(rec)
    if as_json:
        print(json.dumps(d))
    else:
        err.print(f"{task}/{split} n={rec.n}: accuracy {rec.accuracy:.3f} [{rec.ci95[0]:.3f}, {rec.ci95[1]:.3f}], "
                  f"extraction {rec.extraction_rate:.2f}, flexible {rec.flex_accuracy:.3f} ({rec.wall_s:.1f}s)")


FINAL_OVERRIDABLE = ("ensemble.", "executor.", "stats.")


def _run_final_stage(run_dir: Path, store, cfg) -> None:
    """Final stage, then the report and the closing table (caller holds the run lock)."""
    from rewardsearch.report import write_report
    from rewardsearch.report.results import build_results
    from rewardsearch.search.finals import FinalStage

    store.set_meta("final_config", cfg.model_dump(mode="json"))
    store.set_meta("final_config_hash", cfg.hash())
    FinalStage(run_dir, cfg, store, console=err).run()
    try:
        out = write_report(run_dir, store)
        _print_final_table(build_results(run_dir, store))
    except ImportError as exc:  # a trainer-only machine (e.g. a bare GPU box): the store holds everything
        err.print(f"no report here ({exc}); copy {run_dir} to a machine with the report's dependencies and run "
                  f"`rewardsearch report {run_dir}` there", markup=False)
        return
    err.print(f"report: {out / 'index.html'}")


def _print_final_table(results: dict) -> None:
    from rewardsearch.report.results import final_table

    def p(c: dict | None) -> str:
        return "-" if not c else f"{c['p_holm']:.3g} ({c['diff']:+.3f})"

    table = Table(title=f"final arms on test (selected on {results['selection_split']}; p = Holm-corrected, seeds "
                        f"and items random, test-final family, alpha {results['settings']['alpha']})")
    for col in ("role", "arm", "k", "seeds", "test acc", "seed sd", "95% CI (BCa)", "p vs best ens.", "p vs base",
                "extract", "flex acc"):
        table.add_column(col)
    for r in final_table(results):
        ci = r["ci95_bca"] or r["ci95_percentile"]
        table.add_row(
            r["role"], r["label"], str(r["k"]), str(len(r["seeds"])), f"{r['test_accuracy']:.3f}",
            f"{r['seed_sd']:.3f}" if r["seed_sd"] is not None else "-",
            f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "-", p(r["vs_best_ensemble"]), p(r["vs_base"]),
            *(f"{r[k]:.3f}" if r.get(k) is not None else "-" for k in ("test_extraction_rate", "test_flex_accuracy")),
        )
    Console(width=160).print(table)
    w = results.get("winner")
    if w:
        print(f"verdict: {w['verdict']}: {w['message']}" + (f" ({w['note']})" if w.get("note") else ""))


@app.command()
def ensemble(
    run_dir: Annotated[Path, typer.Argument(help="run directory of a finished search")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="ensemble.*, executor.*, stats.* KEY=VALUE overrides")
    ] = None,
    random_run: Annotated[
        Path | None, typer.Option(help="a finished search.mode=random run: its best candidate becomes a control")
    ] = None,
) -> None:
    """Ensembles, multi-seed retraining of the best candidates and controls; then the report and a final table.

    Overrides are remembered: `rewardsearch ensemble DIR` again continues a killed stage with the same settings.
    """
    from rewardsearch.config import Config, ConfigError, override_config
    from rewardsearch.models import ModelNotAvailable
    from rewardsearch.search.loop import RunLocked, run_lock

    store = _open_run(run_dir)
    items = list(overrides) if overrides else list(store.get_meta("final_overrides") or [])
    if random_run is not None:
        items = [i for i in items if not i.startswith("ensemble.random_run=")]
        items.append(f"ensemble.random_run={random_run.resolve()}")
    try:
        cfg = override_config(Config.model_validate(store.get_meta("config")), items, allowed=FINAL_OVERRIDABLE)
    except ConfigError as exc:
        _fail(str(exc))
    store.set_meta("final_overrides", items)
    for item in items:
        err.print(f"override: {item}", highlight=False, markup=False)
    t0 = time.time()
    try:
        with run_lock(run_dir):
            _run_final_stage(run_dir, store, cfg)
    except (RunLocked, ModelNotAvailable, RuntimeError, FileNotFoundError) as exc:
        _fail(str(exc).splitlines()[0])
    except KeyboardInterrupt:
        store.set_meta("final_status", "interrupted")
        err.print(f"interrupted; continue with `rewardsearch ensemble {run_dir}`")
        raise typer.Exit(130) from None
    err.print(f"final stage done in {time.time() - t0:.0f}s")


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="run directory")],
    format: Annotated[str, typer.Option("--format", help="trl | verl | openrlhf")] = "trl",
    top: Annotated[int, typer.Option(help="how many of the best reward sets to export", min=1)] = 1,
    out: Annotated[Path | None, typer.Option(help="a .py file (one reward set) or a directory")] = None,
) -> None:
    """Export the best rewards (or reward sets) as standalone Python modules with a manifest each."""
    from rewardsearch.rewards.export import FORMATS, ExportError, export_run

    if format not in FORMATS:
        _fail(f"--format {format!r}: expected one of {', '.join(FORMATS)}")
    store = _open_run(run_dir)
    try:
        written = export_run(run_dir, store, format, top, out)
    except ExportError as exc:
        _fail(str(exc))
    for path in written:
        err.print(f"wrote {path} (+ {path.with_suffix('.manifest.json').name})")



@app.command()
def pack(
    run_dir: Annotated[Path, typer.Argument(help="run directory")],
    out: Annotated[Path, typer.Option(help="directory the parts are written to")] = Path("."),
    budget_mb: Annotated[float, typer.Option(help="MiB in all", min=1)] = 60.0,
    part_mb: Annotated[float, typer.Option(help="MiB per part", min=1)] = 15.0,
    with_adapters: Annotated[bool, typer.Option(help="also the adapters of finished trials")] = False,
) -> None:
    """Pack a run (store, trial records, in-flight checkpoints that fit) into a few parts for another machine."""
    from rewardsearch.transfer import pack as pack_run

    try:
        rep = pack_run(run_dir, out, budget_mb=budget_mb, part_mb=part_mb, with_adapters=with_adapters)
    except ValueError as exc:
        _fail(str(exc))
    err.print(f"packed {rep.bytes / 2**20:.1f} MiB into {len(rep.parts)} part(s) in {out}; "
              f"checkpoints kept: {', '.join(rep.kept_checkpoints) or 'none'}"
              + (f"; left out (those trials restart): {', '.join(rep.dropped_checkpoints)}"
                 if rep.dropped_checkpoints else "")
              + (f"; adapters of {rep.dropped_adapters} finished trial(s) left out" if rep.dropped_adapters else ""))
    err.print(f"on the other machine: `rewardsearch unpack {run_dir.name}.rspack.* --out DIR` then "
              "`rewardsearch resume DIR`")


@app.command()
def unpack(
    parts: Annotated[list[Path], typer.Argument(help="all NAME.rspack.NN-of-MM files")],
    out: Annotated[Path, typer.Option(help="new run directory")],
) -> None:
    """Rebuild a packed run; then `rewardsearch resume DIR` continues it."""
    from rewardsearch.transfer import unpack as unpack_run

    try:
        unpack_run(parts, out)
    except ValueError as exc:
        _fail(str(exc))
    err.print(f"unpacked into {out}; continue with `rewardsearch resume {out}`")


if __name__ == "__main__":
    app()
