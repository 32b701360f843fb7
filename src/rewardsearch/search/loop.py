"""The search loop: rounds of propose -> check -> screen (train + dev eval) -> rank -> feedback.

Every step reads what is left to do from the store and writes each result in its own transaction, so
`resume` is the same code path as `run`: finished candidates and trials are skipped, the trial in flight
is redone. A base-rewards-only baseline trial runs with the first round's screening batch.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from rewardsearch.config import Config
from rewardsearch.execute.base import Attempt, Executor, Job, TrialResult, make_executor
from rewardsearch.propose.base import MAX_NOTES, ProposerError, RoundContext, clip_note, make_proposer
from rewardsearch.screen import outputs
from rewardsearch.screen.halving import DROPPED, FAILED, FINAL, PROMOTED
from rewardsearch.screen.trial import TrialSpec
from rewardsearch.search.ranking import (
    BASE_MODEL,
    base_model_trial_id,
    curve_summary,
    feedback_record,
    history,
    leaderboard,
    ranked,
    trial_id_for,
)
from rewardsearch.store import EvalRecord, RungRecord, Store, TrialRecord


class RunLocked(RuntimeError):
    pass


class RunStopped(RuntimeError):
    """The run cannot go on here (the pre-flight failed, or every trial of a round failed for infrastructure
    reasons); the message says why. What the run has is kept: fix the cause, then `resume`."""


@contextmanager
def run_lock(run_dir: Path):
    """One driver per run directory; a second `run`/`resume` fails at once instead of racing the first."""
    lock_path = run_dir / ".lock"
    fh = open(lock_path, "a+")  # noqa: SIM115 - held for the whole run
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "another process"
        fh.close()
        raise RunLocked(f"run directory {str(run_dir)!r} is in use by pid {holder}; wait for it or kill it") from None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    try:
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


# the stages whose rejections a refill replaces (`Search._refill`); a prescreen rejection is a judgement of a
# working reward on the policy's own rollouts, not a bug to fix, and is not replaced
_REFILL_STAGES = ("static:", "probe:", "dedup:")


def refillable(reason: str | None) -> bool:
    """Whether a candidate rejected with `reason` ("stage: why") is replaced by a refill."""
    return (reason or "").startswith(_REFILL_STAGES)


def rejection_note(c: dict[str, Any]) -> str:
    """The one-line note a refill ask carries for a rejected candidate."""
    reason = clip_note(c["reason"] or "no reason recorded")
    fix = "write a different one" if reason.startswith("dedup:") else "fix it"
    return f"your previous candidate {c['name']} was rejected: {reason}; {fix}"


class Search:
    """Drives one run directory. Holds no model: every trial is a subprocess owned by the executor."""

    def __init__(self, run_dir: Path, cfg: Config, store: Store, console: Console | None = None):
        self.run_dir = run_dir
        self.cfg = cfg
        self.store = store
        self.console = console or Console(stderr=True)
        self._pool_cache: dict[str, Any] | None = None   # the pre-screen pool, read once
        self._executor_obj: Executor | None = None
        self._preflight_done = not cfg.executor.preflight
        self._shown_keys: set[str] | None = None   # behaviour of the prompt's examples, probed once

    def executor(self) -> Executor:
        """The executor `executor.name` names, made once per driver (a Ray connection is made once)."""
        if self._executor_obj is None:
            self._executor_obj = make_executor(self.cfg.executor, device=self.cfg.screen.device)
            self.store.set_meta("executor", self._executor_obj.describe())
        return self._executor_obj

    def run_jobs(self, jobs: list[Job], on_done: Any, on_start: Any = None, on_poll: Any = None,
                 stage: str = "search") -> None:
        """Run jobs through the executor; every attempt's start, retry and placement lands in the store."""
        store = self.store
        running: dict[str, Any] = store.get_meta("running") or {}

        def started(job: Job, placement: dict[str, Any]) -> None:
            store.event("trial_started", trial=job.trial_id, stage=stage, **placement)
            running[job.trial_id] = {**placement, "since": time.time(), "log": str(job.log_path)}
            store.set_meta("running", running)
            if on_start:
                on_start(job, placement)

        def retry(job: Job, att: Attempt) -> None:
            store.event("trial_retry", trial=job.trial_id, stage=stage, **att.to_dict())
            self.console.log(f"  {job.trial_id}: attempt {att.attempt} failed on {att.host} device {att.device}: "
                             f"{att.reason}; retrying ({att.attempt} of {self.cfg.executor.retries} retries)")

        def done(job: Job, result: TrialResult) -> list[Job] | None:
            running.pop(job.trial_id, None)
            store.set_meta("running", running)
            return on_done(job, result)

        self.executor().run(jobs, on_done=done, on_start=started, on_poll=on_poll, on_retry=retry)

    # -- the whole run -------------------------------------------------------------------------------------

    def run(self) -> None:
        from rewardsearch.models import resolve_model
        from rewardsearch.tasks import load_task

        cfg, store = self.cfg, self.store
        store.set_meta("status", "running")
        store.set_meta("running", {})   # what a killed driver had in flight is not running any more
        store.event("run_started", pid=os.getpid())
        t0 = time.time()
        self.model_dir = resolve_model(cfg.model)
        self.task = load_task(cfg.task, cfg.seed)
        self.proposer = make_proposer(cfg.proposer, store=store)
        store.set_meta("model_dir", str(self.model_dir))
        from rewardsearch.sandbox import describe_machine, resolve_level

        level = resolve_level(cfg.sandbox)  # fails the run here, loudly, if candidate code could not be contained
        store.set_meta("sandbox", {"level": level, "machine": describe_machine()})
        store.event("sandbox_level", level=level)
        self.console.log(
            f"run {self.run_dir} | task {cfg.task.name} | model {cfg.model.name} | proposer {cfg.proposer.name} | "
            f"{cfg.search.rounds} rounds x {cfg.search.candidates_per_round} candidates x {cfg.screen.steps} steps"
            f" | sandbox {level}"
        )
        for r in range(1, cfg.search.rounds + 1):
            if store.get_meta(f"round_{r}_done"):
                continue
            stop = getattr(self.proposer, "exhausted", None)
            if stop and not store.get_meta(f"proposed_round_{r}"):
                # budget spent or nothing left to propose: end cleanly, everything finished so far stands
                store.set_meta("stopped", stop)
                store.event("stopped", round=r, reason=stop)
                self.console.log(f"stopping before round {r}: {stop}")
                break
            self.round(r)
            store.set_meta(f"round_{r}_done", True)
            store.set_meta("rounds_done", r)
        store.set_meta("status", "done")
        store.event("run_finished", wall_s=time.time() - t0)
        rows = leaderboard(store, cfg.seed)
        best, base = ranked(rows), rows[0]
        if best:
            b = best[0]
            self.console.log(
                f"done: best {b['name']} dev acc {b['dev']['accuracy']:.3f}; baseline dev acc "
                f"{base['dev']['accuracy'] if base['dev'] else float('nan'):.3f}"
            )

    # -- one round -----------------------------------------------------------------------------------------

    def round(self, r: int) -> None:
        store, cfg = self.store, self.cfg
        if cfg.prescreen.enabled:
            self._ensure_pool()
        self.propose_and_check(r, before_call=self._preflight)
        self._forget_infra_failures(r)
        todo = [c for c in store.candidates(round=r) if c["state"] in ("accepted", "trained")]
        self._screen(r, todo)
        self._stop_if_all_failed(r)
        fb = feedback_record(store, cfg.seed, r, cfg.search.feedback_top, cfg.search.feedback_bottom)
        store.set_feedback(r, fb)
        store.event("round_done", round=r, top=[t["name"] for t in fb["top"]])
        if fb["top"]:
            lead = fb["top"][0]
            self.console.log(f"round {r} done: leader {lead['name']} dev acc {lead['dev']['accuracy']:.3f}")

    def _forget_infra_failures(self, r: int) -> None:
        """A round left unfinished (stopped, killed) trains its infrastructure-failed trials again: they never
        judged the reward. Within one session the executor's retries were their second chance."""
        store = self.store
        for c in store.candidates(round=r):
            if c["state"] != "infra_failed":
                continue
            tid = trial_id_for(c["id"], self.cfg.seed)
            store.forget_trial_failure(tid)
            store.set_candidate_state(c["id"], "accepted", None)
            store.event("trial_reset", trial=tid, reason="infrastructure failure: trained again")

    def _stop_if_all_failed(self, r: int) -> None:
        """Every trial of the round failed for infrastructure reasons: the machinery is broken, stop with why."""
        trials = [t for c in self.store.candidates(round=r) if (t := self.store.trial(trial_id_for(c["id"],
                                                                                                     self.cfg.seed)))]
        if trials and all(t.state == "failed" and t.metrics.get("infra") for t in trials):
            reasons = sorted({(t.reason or "?")[:200] for t in trials})
            self.store.event("round_failed", round=r, reasons=reasons)
            raise RunStopped(f"round {r}: all {len(trials)} trials failed for infrastructure reasons after "
                             f"{self.cfg.executor.retries} retries each; e.g. {reasons[0]}")

    def _preflight(self) -> None:
        """One baseline GRPO step on the target device, through the executor, before a proposer call is paid for."""
        import shutil

        if self._preflight_done:
            return
        cfg, store = self.cfg, self.store
        out = self.run_dir / "preflight"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        spec = self._trial_spec("preflight", [], out)
        spec.screen = {**spec.screen, "steps": 1, "rungs": [], "checkpoint_every": 0, "report_to": []}
        spec.eval_splits = []
        spec.write(out / "spec.json")
        job = Job(trial_id="preflight", spec_path=out / "spec.json", log_path=out / "log.txt")
        got: list[TrialResult] = []
        self.console.log(f"pre-flight: one baseline step on screen.device={cfg.screen.device} via "
                         f"executor {cfg.executor.name}")
        self.run_jobs([job], on_done=lambda _j, res: got.append(res), stage="preflight")  # type: ignore[func-returns-value]
        v = outputs.verdict(got[0], outputs.read(out, []), need=[])
        info = {"ok": v.state == "done", "reason": v.reason, "device": got[0].last.device,
                "host": got[0].last.host, "wall_s": got[0].wall_s, "attempts": len(got[0].attempts),
                "trained_on": (outputs.read(out, []).train or {}).get("device")}
        # the one-step adapter is of no use (35 MB for the Qwen testbed) and would ride along in every pack
        shutil.rmtree(out / "adapter", ignore_errors=True)
        store.set_meta("preflight", info)
        store.event("preflight", **info)
        if v.state != "done":
            raise RunStopped(f"pre-flight failed (one baseline step on screen.device={cfg.screen.device}, log "
                             f"{job.log_path}): {v.reason}; no proposer was called")
        self.console.log(f"pre-flight ok: {info['trained_on']} on {info['host']} ({info['wall_s']:.0f}s)")
        self._preflight_done = True

    def propose_and_check(self, r: int, before_call: Any = None) -> None:
        """Round `r`'s proposal, its checks and its refills: everything of a round before training.

        `before_call` runs before each proposer call of this session (the loop's pre-flight). Resumable: what the
        store holds is not asked for again. `benchmarks/proposer_funnel.py` runs this alone, without training.
        """
        if not self.store.get_meta(f"proposed_round_{r}"):
            if before_call:
                before_call()   # before the first proposer call of this session: a broken device costs nothing
            self._propose(r)
        self._check_proposed(r)
        self._refill(r, before_call=before_call)

    def _refill(self, r: int, before_call: Any = None) -> None:
        """Ask the proposer again, up to `search.refills` times, for the candidates round `r` lost: rejected by the
        static check or the probes, or as behavioural duplicates.

        A small model's candidate often fails on a real bug (an unchecked `blocks[0]`, comparing with the whole
        `answer` list); a bred child often behaves exactly like an earlier candidate. Each ask carries one note
        per candidate of the round rejected so far, its one-line reason and "fix it" (`RoundContext.notes`), so
        the proposer can repair rather than guess again. No check is relaxed: a replacement is checked like any
        candidate and may be lost in turn. Each refill is marked in the store, so `resume` never asks twice for
        the same one; its candidates carry `meta.refill`, and the funnel counts them (`search/funnel.py`).
        """
        store, cfg = self.store, self.cfg
        for k in range(1, cfg.search.refills + 1):
            cands = store.candidates(round=r)
            lost = [c for c in cands if c["state"] == "rejected" and refillable(c["reason"])]
            short = cfg.search.candidates_per_round - (len(cands) - len(lost))
            if short <= 0 or getattr(self.proposer, "exhausted", None):
                return
            mark = f"refill_{r}_{k}"
            if not store.get_meta(mark):
                if before_call:
                    before_call()
                self._propose(r, want=short, mark=mark, notes=[rejection_note(c) for c in lost][-MAX_NOTES:])
            self._check_proposed(r)

    def _check_proposed(self, r: int) -> None:
        for c in self.store.candidates(round=r):
            if c["state"] == "proposed":
                self._check(c)

    def _propose(self, r: int, want: int | None = None, mark: str | None = None,
                 notes: list[str] | None = None) -> None:
        store, cfg = self.store, self.cfg
        # random mode: the same proposer with the feedback removed (no history, no numbers) - the control; a
        # refill's notes stay in both modes: they say why this round's code was invalid, not how any reward did
        feedback = cfg.search.mode == "feedback"
        hist = history(store, cfg.seed) if feedback else []
        base_row = leaderboard(store, cfg.seed)[0]
        base_dev = base_row["dev"]
        if base_dev and feedback:
            base_trial = store.trial(trial_id_for(None, cfg.seed))
            base_dev = {**base_dev, "curves": curve_summary(base_trial.curves) if base_trial else {},
                        "flags": base_row["flags"], "shift": base_row["shift"]}
        have = store.candidates(round=r)  # kept from an interrupted proposal of this round
        ctx = RoundContext(
            round=r,
            seed=cfg.seed,
            task_card=self.task.card(),
            samples=self.task.split("train")[:5],
            history=hist,
            existing_ids={c["id"] for c in store.candidates()},
            baseline_accuracy=base_dev["accuracy"] if base_dev and feedback else None,
            baseline_dev=base_dev if feedback else None,
            feedback=feedback,
            feedback_top=cfg.search.feedback_top,
            feedback_bottom=cfg.search.feedback_bottom,
            score_bound=cfg.sandbox.score_bound,
            answer_format=self.task.answer_format,
            refill=mark,
            notes=list(notes or []),
        )
        t0 = time.time()
        if want is None:
            want = cfg.search.candidates_per_round - len(have)
        try:
            specs = self.proposer.propose(ctx, want) if want > 0 else []
        except ProposerError as exc:
            for s in exc.partial:
                s.round = r
            kept = store.add_candidates(exc.partial)  # the round stays open: `resume` asks for the rest
            store.event("propose_failed", round=r, kept=len(kept), reason=str(exc))
            raise
        for s in specs:
            s.round = r
            if mark:
                s.meta = {**s.meta, "refill": mark}
        added = store.add_candidates(specs, proposed_round=None if mark else r, mark=mark)
        store.event("proposed", round=r, n=len(added), wall_s=time.time() - t0, refill=mark)
        what = "replacements for rejected candidates" if mark else "candidates"
        self.console.log(f"round {r}: {len(added)} {what} proposed by {cfg.proposer.name}")
        stop = getattr(self.proposer, "exhausted", None)
        if stop:
            store.event("proposer_exhausted", round=r, reason=stop)
            self.console.log(f"proposer {cfg.proposer.name} can give no more: {stop}")

    def _example_keys(self, samples: list[tuple[str, str]]) -> set[str]:
        """Behaviour keys of the rewards the proposer's prompt shows (probed once per session, in the sandbox)."""
        from rewardsearch.sandbox import check_reward
        from rewardsearch.search.dedup import behaviour_key

        if self._shown_keys is None:
            keys: set[str] = set()
            shown = getattr(self.proposer, "shown_examples", None)
            for spec in shown(self.task.answer_format) if shown else []:
                probe = check_reward(spec, self.cfg.sandbox, samples, fmt=self.task.answer_format)[-1]
                if probe.ok and probe.details.get("scores") is not None:
                    keys.add(behaviour_key(probe.details["scores"]))
            self._shown_keys = keys
        return self._shown_keys

    def _check(self, c: dict[str, Any]) -> None:
        from rewardsearch.sandbox import CheckResult, check_reward
        from rewardsearch.search.dedup import behaviour_key, find_twin

        spec = Store.spec_of(c)
        samples = [(p.question, p.answer) for p in self.task.split("train")[:8]]
        results = check_reward(spec, self.cfg.sandbox, samples, fmt=self.task.answer_format)
        probe = results[-1]
        if probe.ok and probe.details.get("scores") is not None:
            key = probe.details["behaviour"] = behaviour_key(probe.details["scores"])
            twin = find_twin(self.store, c["id"], key)
            n = len(probe.details["scores"])
            if twin:
                results.append(CheckResult(
                    "dedup", False, f"duplicate of {twin}: same scores on all {n} probes",
                    details={"twin": twin, "behaviour": key},
                ))
            elif key in self._example_keys(samples):
                results.append(CheckResult(
                    "dedup", False, f"duplicate of the prompt's example: same scores on all {n} probes (a copy "
                    "under another name)", details={"twin": "prompt-example", "behaviour": key},
                ))
        if self.cfg.prescreen.enabled and all(res.ok for res in results):
            from rewardsearch.screen.prescreen import prescreen_check

            results.append(prescreen_check(spec, self._pool(), self.cfg.prescreen, self.cfg.sandbox))
        flags: list[str] = []
        for res in results:
            self.store.add_check(c["id"], res.stage, res.ok, res.reason, res.flags, res.details)
            flags.extend(res.flags)
        failed = next((res for res in results if not res.ok), None)
        if failed:
            self.store.set_candidate_state(c["id"], "rejected", f"{failed.stage}: {failed.reason}", flags)
            self.console.log(f"  rejected {c['name']}: {failed.stage}: {failed.reason}")
        else:
            self.store.set_candidate_state(c["id"], "accepted", None, flags)

    # -- screening -----------------------------------------------------------------------------------------

    def _trial_spec(self, tid: str, rewards: list[dict[str, Any]], out_dir: Path) -> TrialSpec:
        cfg = self.cfg
        return TrialSpec(
            trial_id=tid,
            out_dir=str(out_dir),
            model_dir=str(self.model_dir),
            seed=cfg.seed,
            task_seed=cfg.seed,
            task=cfg.task.model_dump(mode="json"),
            model=cfg.model.model_dump(mode="json"),
            screen=cfg.screen.model_dump(mode="json"),
            sandbox=cfg.sandbox.model_dump(mode="json"),
            eval=cfg.eval.model_dump(mode="json"),
            rewards=rewards,
            eval_splits=["dev"],
        )

    def _screen(self, r: int, candidates: list[dict[str, Any]]) -> None:
        """Train and evaluate round `r`'s candidates by successive halving (`screen/halving.py`) beside the
        baseline (always the full budget). Without `screen.rungs` there is one rung: `screen.steps`."""
        store, cfg = self.store, self.cfg
        schedule = cfg.screen.schedule()
        jobs: list[Job] = []
        meta: dict[str, tuple[str | None, TrialRecord]] = {}
        base = store.trial(trial_id_for(None, cfg.seed))
        base_model_job = self._base_model_job()
        if base_model_job is not None:
            jobs.append(base_model_job)  # first: a short greedy eval, done before the trials it is compared with
        if base is None or base.state == "pending":  # the first screening batch carries the baseline
            meta[trial_id_for(None, cfg.seed)] = (None, self._trial_record(None, r))
            jobs.append(self._job(trial_id_for(None, cfg.seed), None, None))
        for c in candidates:
            tid = trial_id_for(c["id"], cfg.seed)
            meta[tid] = (c["id"], self._trial_record(c["id"], r))
        cand = [tid for tid, (cid, _) in meta.items() if cid is not None]
        running: set[str] = set()

        def advance() -> list[Job]:
            """The candidate jobs to start now; decides a rung once all its trials are in."""
            out = []
            for tid, k in self._rung_todo(r, cand, schedule):
                if tid not in running:
                    running.add(tid)
                    out.append(self._job(tid, meta[tid][0], schedule[k] if k < len(schedule) - 1 else None))
            return out

        jobs += advance()
        running.update(j.trial_id for j in jobs)
        if not jobs:
            return
        names = {tid: (store.candidate(cid)["name"] if cid else "baseline") for tid, (cid, _) in meta.items()}  # type: ignore[index]
        names[base_model_trial_id(cfg.seed)] = "base model (no training)"
        with Progress(
            TextColumn("[bold]round {task.fields[round]}[/]"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=self.console, transient=False,
        ) as progress:
            bar = progress.add_task("screen", total=len(jobs), round=f"{r}: trials")
            total = [len(jobs)]
            steps: dict[str, TaskID] = {}

            def on_start(job: Job, placement: dict[str, Any]) -> None:
                if job.trial_id in steps:   # a retry: its bar stays
                    return
                evaluating = job.trial_id == base_model_trial_id(cfg.seed)  # an eval has no steps to count
                spec = TrialSpec.read(job.spec_path)
                upto = f" to step {spec.stop_at}" if spec.stop_at else ""
                progress.console.log(f"  {'evaluating' if evaluating else 'training'} {names[job.trial_id]} "
                                     f"({job.trial_id}){upto}")
                steps[job.trial_id] = progress.add_task(
                    "trial", total=None if evaluating else (spec.stop_at or cfg.screen.steps),
                    round=f"{r}: {names[job.trial_id][:32]}",
                )

            def on_poll(running_jobs: list[Job]) -> None:
                for job in running_jobs:
                    try:
                        p = json.loads((job.spec_path.parent / "progress.json").read_text())
                    except (OSError, ValueError):
                        continue  # not written yet (model loading) or being replaced
                    progress.update(steps[job.trial_id], completed=p.get("step", 0))

            def on_done(job: Job, outcome: TrialResult) -> list[Job]:
                running.discard(job.trial_id)
                more: list[Job] = []
                if job.trial_id == base_model_trial_id(cfg.seed):
                    self._collect_base_model(job, outcome)
                else:
                    cid, rec = meta[job.trial_id]
                    spec = TrialSpec.read(job.spec_path)
                    if spec.stop_at is None:
                        self._collect(job, outcome, cid, rec)
                    else:
                        self._collect_rung(job, outcome, cid, rec, spec.stop_at)
                    self._record_final_rung(r, rec, schedule)
                    more = advance()
                progress.remove_task(steps.pop(job.trial_id))
                progress.advance(bar)
                total[0] += len(more)
                progress.update(bar, total=total[0])
                return more

            self.run_jobs(jobs, on_done=on_done, on_start=on_start, on_poll=on_poll)

    def _trial_record(self, cid: str | None, r: int) -> TrialRecord:
        tid = trial_id_for(cid, self.cfg.seed)
        rec = self.store.trial(tid) or TrialRecord(
            id=tid, kind="baseline" if cid is None else "candidate", round=0 if cid is None else r,
            seed=self.cfg.seed, rewards=[cid] if cid else [], candidate_id=cid,
            dir=str(self.run_dir / "trials" / tid),
        )
        self.store.upsert_trial(rec)
        return rec

    def _job(self, tid: str, cid: str | None, stop_at: int | None) -> Job:
        """The job that trains trial `tid` to `stop_at` (None: the final rung, then the full dev evaluation)."""
        out_dir = self.run_dir / "trials" / tid
        out_dir.mkdir(parents=True, exist_ok=True)
        spec_path = out_dir / "spec.json"
        rewards = [Store.spec_of(self.store.candidate(cid)).to_dict()] if cid else []  # type: ignore[arg-type]
        spec = self._trial_spec(tid, rewards, out_dir)
        spec.stop_at, spec.early_stop = stop_at, cid is not None
        spec.write(spec_path)
        return Job(trial_id=tid, spec_path=spec_path, log_path=out_dir / "log.txt")

    def _rung_todo(self, r: int, tids: list[str], schedule: list[int]) -> list[tuple[str, int]]:
        """`(trial, rung index)` pairs to train now. Deciding a rung when all of its trials are in is part of it:
        the round moves rung by rung, so the store alone says where a resumed round stands."""
        last = len(schedule) - 1
        while True:
            rows: dict[str, dict[int, RungRecord]] = {t: {} for t in tids}
            for row in self.store.rungs(round=r):
                if row.trial_id in rows:
                    rows[row.trial_id][row.rung - 1] = row
            level = None
            for k in range(len(schedule)):
                alive = [t for t in tids if k == 0 or (rows[t].get(k - 1) and rows[t][k - 1].decision == PROMOTED)]
                if any(k not in rows[t] or rows[t][k].decision is None for t in alive):
                    level = k
                    break
            if level is None:
                return []
            todo = [(t, level) for t in alive if level not in rows[t]]
            if todo or level == last:
                return todo
            self._decide_rung(r, level, [rows[t][level] for t in alive], schedule)

    def _decide_rung(self, r: int, k: int, results: list[RungRecord], schedule: list[int]) -> None:
        """Promote or drop the round's trials that trained to rung `k` (0-based); checkpoints of the dropped go."""
        from rewardsearch.evaluate.stats import BootstrapSettings
        from rewardsearch.screen.halving import RungResult, promote, remove_checkpoints

        cfg, store = self.cfg, self.store
        ok = [x for x in results if x.state == "ok"]
        settings = BootstrapSettings(cfg.stats.bootstrap_resamples, cfg.stats.confidence, cfg.seed)
        decided = promote(
            [RungResult(x.trial_id, x.item_ids, x.correct, x.accuracy or 0.0, x.extraction_rate or 0.0,
                        x.flex_accuracy or 0.0, r) for x in ok],
            cfg.screen.keep_at(k), cfg.screen.keep_within_noise, cfg.stats.alpha, settings,
        )
        store.decide_rungs([(tid, k + 1, what, why) for tid, (what, why) in decided.items()])
        where = f"rung {k + 1}/{len(schedule)} ({schedule[k]} steps, {ok[0].n if ok else 0} dev items)"
        for tid, (what, why) in decided.items():
            row = next(x for x in ok if x.trial_id == tid)
            if what == DROPPED:
                remove_checkpoints(self.run_dir / "trials" / tid)
                rec = store.trial(tid)
                if rec is not None:
                    rec.state, rec.reason = "dropped", f"dropped at {where}: {why}"
                    store.upsert_trial(rec)
                if row.candidate_id:
                    store.set_candidate_state(row.candidate_id, "dropped", f"dropped at {where}: {why}")
            name = store.candidate(row.candidate_id)["name"] if row.candidate_id else tid  # type: ignore[index]
            self.console.log(f"  {where}: {what} {name}: {why}")
        store.event("rung_decided", round=r, rung=k + 1, steps=schedule[k],
                    promoted=[t for t, (w, _) in decided.items() if w == PROMOTED],
                    dropped=[t for t, (w, _) in decided.items() if w == DROPPED])

    def _collect_rung(self, job: Job, result: TrialResult, cid: str | None, rec: TrialRecord, stop_at: int) -> None:
        """A trial stopped at a rung below the last: its dev-slice result becomes a rung row awaiting the decision."""
        store, schedule = self.store, self.cfg.screen.schedule()
        files = outputs.read(job.out_dir, [], rung_steps=stop_at)
        v = outputs.verdict(result, files, need=[], rung=True)
        k = schedule.index(stop_at)
        outputs.note_run(rec, result, files)
        row = RungRecord(trial_id=rec.id, candidate_id=cid, round=rec.round, rung=k + 1, steps=stop_at,
                         state="ok", steps_trained=(files.train or {}).get("steps"), wall_s=result.wall_s)
        if v.state == "done":
            ev = files.rung_eval
            assert ev is not None  # the verdict checked it
            row.item_ids, row.correct, row.accuracy = ev["item_ids"], ev["correct"], ev["accuracy"]
            row.extraction_rate, row.flex_accuracy = ev["extraction_rate"], ev["flex_accuracy"]
            with store.tx():
                store.upsert_trial(rec)
                store.add_rung(row)
            self.console.log(f"  {self._label(cid)}: rung {k + 1} ({stop_at} steps) dev-slice acc {ev['accuracy']:.3f} "
                             f"on {len(row.item_ids)} items ({result.wall_s:.0f}s)")
            return
        self._fail_trial(rec, cid, v)
        row.state, row.decision, row.reason = "failed", FAILED, v.reason
        store.add_rung(row)

    def _record_final_rung(self, r: int, rec: TrialRecord, schedule: list[int]) -> None:
        """The rung row of a trial that trained to the last rung (or failed on the way there, after `_collect`)."""
        rec = self.store.trial(rec.id) or rec
        have = {x.rung for x in self.store.rungs(trial_id=rec.id)}
        k = len(schedule)
        if rec.state == "pending" or k in have or (rec.state == "failed" and any(
                x.decision == FAILED for x in self.store.rungs(trial_id=rec.id))):
            return
        ev = self.store.eval(rec.id, "dev")
        row = RungRecord(trial_id=rec.id, candidate_id=rec.candidate_id, round=r, rung=k, steps=schedule[-1],
                         state="ok" if rec.state == "done" else "failed", steps_trained=rec.metrics.get("steps"),
                         decision=FINAL if rec.state == "done" else FAILED,
                         reason="trained the full budget" if rec.state == "done" else rec.reason,
                         wall_s=rec.metrics.get("last_job_wall_s"))
        if ev is not None:
            row.item_ids, row.correct, row.accuracy = ev.item_ids, ev.correct, ev.accuracy
            row.extraction_rate, row.flex_accuracy = ev.extraction_rate, ev.flex_accuracy
        self.store.add_rung(row)

    def _fail_trial(self, rec: TrialRecord, cid: str | None, v: outputs.Verdict) -> None:
        """Record a failed trial. An infrastructure failure is not the reward's: the candidate is `infra_failed`
        (kept out of the proposer's feedback, trained again by `resume`), not `failed`."""
        from rewardsearch.screen.halving import remove_checkpoints

        rec.state, rec.reason = "failed", v.reason
        rec.metrics["infra"] = v.infra
        with self.store.tx():
            self.store.upsert_trial(rec)
            if cid:
                quarantined = bool(v.reason and "quarantined" in v.reason)
                state = "infra_failed" if v.infra else "quarantined" if quarantined else "failed"
                self.store.set_candidate_state(cid, state, v.reason)
            self.store.event("trial_failed", trial=rec.id, reason=v.reason, infra=v.infra)
        if not v.infra:   # an infrastructure failure keeps its checkpoint: a later session continues from it
            remove_checkpoints(Path(rec.dir or self.run_dir / "trials" / rec.id))
        self.console.log(f"  {self._label(cid)}: FAILED {v.reason}")

    def _label(self, cid: str | None) -> str:
        return self.store.candidate(cid)["name"] if cid else "baseline"  # type: ignore[index]

    def _ensure_pool(self) -> None:
        """Sample the pre-screen's pool once per run (`screen/prescreen.py`), as an executor job: it uses the model."""
        from rewardsearch.screen.prescreen import POOL_FILE, PoolSpec

        out = self.run_dir / "prescreen"
        if (out / POOL_FILE).is_file():
            return
        out.mkdir(parents=True, exist_ok=True)
        cfg = self.cfg
        PoolSpec(out_dir=str(out), model_dir=str(self.model_dir), seed=cfg.seed, task_seed=cfg.seed,
                 task=cfg.task.model_dump(mode="json"), model=cfg.model.model_dump(mode="json"),
                 screen=cfg.screen.model_dump(mode="json"),
                 prescreen=cfg.prescreen.model_dump(mode="json")).write(out / "spec.json")
        job = Job(trial_id="prescreen-pool", spec_path=out / "spec.json", log_path=out / "log.txt",
                  module="rewardsearch.screen.prescreen")
        result: list[TrialResult] = []
        self.console.log(f"pre-screen: sampling {cfg.prescreen.prompts} x {cfg.prescreen.samples} base-policy "
                         "completions on train prompts")
        self.run_jobs([job], on_done=lambda _j, o: result.append(o), stage="prescreen")  # type: ignore[func-returns-value]
        if not (out / POOL_FILE).is_file():
            why = result[0].infra_reason or f"exit code {result[0].returncode}"
            raise RuntimeError(f"pre-screen pool job failed: {why} (prescreen.enabled=false runs without it)")
        pool = self._pool()
        stats = {k: pool[k] for k in ("wall_s", "device", "samples", "strict_rate", "flexible_rate", "mixed_groups")}
        stats.update(groups=len(pool["groups"]), job_wall_s=result[0].wall_s)
        self.store.set_meta("prescreen_pool", stats)
        self.store.event("prescreen_pool", **stats)
        self.console.log(f"pre-screen pool: {stats['groups']} groups, flexible correctness {stats['flexible_rate']:.3f}, "
                         f"{stats['mixed_groups']} groups with right and wrong ({result[0].wall_s:.0f}s)")

    def _pool(self) -> dict[str, Any]:
        from rewardsearch.screen.prescreen import POOL_FILE

        if self._pool_cache is None:
            self._pool_cache = json.loads((self.run_dir / "prescreen" / POOL_FILE).read_text())
        return self._pool_cache

    def _base_model_job(self) -> Job | None:
        """The base model's dev evaluation (`screen/base_eval.py`) while the run has none: the first screening batch
        carries it, and `resume` of a run made before it existed adds it then. A failed one is not retried: the
        hacking rule then reads "before" from the training curves alone (`search/hacking.py`)."""
        tid = base_model_trial_id(self.cfg.seed)
        rec = self.store.trial(tid)
        if rec is not None and rec.state != "pending":
            return None
        out_dir = self.run_dir / "trials" / tid
        out_dir.mkdir(parents=True, exist_ok=True)
        spec_path = out_dir / "spec.json"
        self._trial_spec(tid, [], out_dir).write(spec_path)
        self.store.upsert_trial(rec or TrialRecord(id=tid, kind=BASE_MODEL, round=0, seed=self.cfg.seed, rewards=[],
                                                   dir=str(out_dir)))
        return Job(trial_id=tid, spec_path=spec_path, log_path=out_dir / "log.txt",
                   module="rewardsearch.screen.base_eval")

    def _collect_base_model(self, job: Job, result: TrialResult) -> None:
        store = self.store
        rec = store.trial(job.trial_id)
        assert rec is not None  # written by `_base_model_job` before the job started
        files = outputs.read(job.out_dir, ["dev"])
        v = outputs.verdict(result, files, need=["dev"], trains=False)
        outputs.note_run(rec, result, files)
        ev = EvalRecord.from_trial(rec.id, "dev", files.evals["dev"]) if v.state == "done" else None
        if ev is not None:
            rec.state, rec.reason = "done", None
            length = f"{ev.mean_length:.0f}" if ev.mean_length is not None else "?"
            self.console.log(f"  base model (no training): dev acc {ev.accuracy:.3f}, flexible "
                             f"{ev.flex_accuracy:.3f}, mean length {length} chars ({result.wall_s:.0f}s)")
        else:
            rec.state, rec.reason = "failed", f"base model eval: {v.reason}"
            rec.metrics["infra"] = v.infra
            self.console.log(f"  base model eval FAILED: {rec.reason}")
        with store.tx():
            if ev is not None:
                store.add_eval(ev)
            store.upsert_trial(rec)
            store.event("base_model_eval", trial=rec.id, state=rec.state, reason=rec.reason)

    def _collect(self, job: Job, result: TrialResult, cid: str | None, rec: TrialRecord) -> None:
        """Read a trial that trained to the last rung into the store: trial, dev eval, candidate state."""
        store = self.store
        files = outputs.read(job.out_dir, ["dev"])
        v = outputs.verdict(result, files, need=["dev"])
        outputs.note_run(rec, result, files)
        if v.state != "done":
            self._fail_trial(rec, cid, v)
            return
        ev = EvalRecord.from_trial(rec.id, "dev", files.evals["dev"])
        rec.state, rec.reason = "done", None
        with store.tx():   # eval, trial, candidate and event together: a kill leaves all or none of them
            store.add_eval(ev)
            store.upsert_trial(rec)
            if cid:
                store.set_candidate_state(cid, "evaluated")
            store.event("trial_done", trial=rec.id, accuracy=ev.accuracy, wall_s=result.wall_s)
        self.console.log(
            f"  {self._label(cid)}: dev acc {ev.accuracy:.3f} [{ev.ci95[0]:.3f}, {ev.ci95[1]:.3f}] "
            f"extraction {ev.extraction_rate:.2f} ({result.wall_s:.0f}s)"
        )
