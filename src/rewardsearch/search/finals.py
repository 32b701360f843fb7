"""The final stage: ensembles, multi-seed retraining of the best candidates, and controls (`rewardsearch ensemble`).

    rewardsearch ensemble DIR [ensemble.KEY=VALUE ...]

Each *arm* is a reward set trained like a candidate (the same GRPO + LoRA trial, `screen/trial.py`) with
`ensemble.seeds` fresh training seeds (`arm_seeds`: the run's seed + 1, + 2, ...), and evaluated once on dev and
once on test:

- `single`: the `ensemble.retrain_top` best candidates by dev accuracy, retrained (noise control);
- `ensemble`: the sets of `search/ensembles.py` (top-k, greedy);
- `control`: base rewards only; `ensemble.random_draws` sets of k randomly drawn accepted candidates (k of the best
  ensemble); the best candidate of a `search.mode=random` run, when one is configured (`ensemble.random_run` names
  a finished run directory; `ensemble.random_search=true` runs one here first, in `DIR/random-search`).

Every arm, singles and base-only included, is trained with `ensemble.normalize` (z-scored members, base rewards
sharing one member's weight), so "ensemble vs single" compares reward sets, not normalizations. No arm reuses the
search's trial: that checkpoint's dev score is the one that selected the candidate (best of N, inflated), and a
lucky seed is lucky on test too. Everything is keyed by content (arm ids from strategies, trial ids from member
sets and seeds), so a killed `ensemble` run continues where it stopped. Which arm is best is decided in one place,
`rank_arms`, on `ensemble.select_split` (dev unless set otherwise).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from rewardsearch.config import Config
from rewardsearch.execute.base import Job, TrialResult
from rewardsearch.rewards.spec import RewardSpec
from rewardsearch.screen import outputs
from rewardsearch.search.ensembles import diverse_rounds, plan_sets, random_set, top_k
from rewardsearch.search.ranking import leaderboard, ranked, trial_id_for
from rewardsearch.store import ArmRecord, EvalRecord, Store, TrialRecord

FINAL_SPLITS = ["dev", "test"]
ACCEPTED_STATES = ("accepted", "trained", "evaluated")  # passed the checks and did not fail in training


def set_key(members: list[str], normalize: str) -> str:
    return hashlib.sha256(json.dumps([sorted(members), normalize]).encode()).hexdigest()[:10]


def arm_trial_id(arm: ArmRecord, seed: int) -> str:
    """The trial of `arm` at `seed`, keyed by its reward set, normalization, steps if not screen.steps, and seed
    (never a search trial)."""
    steps = f"-n{arm.meta['steps']}" if arm.meta.get("steps") else ""
    return f"set-{set_key(arm.members, arm.normalize)}{steps}-s{seed}"


def arm_seeds(cfg: Config) -> list[int]:
    """Training seeds of the final stage: fresh ones, disjoint from the search's seed (`cfg.seed`)."""
    return [cfg.seed + 1 + i for i in range(cfg.ensemble.seeds)]


def arm_accuracy(store: Store, arm: ArmRecord, seeds: list[int], split: str) -> float | None:
    """Mean accuracy over the seeds of `arm` evaluated on `split` (None if none is)."""
    accs = [e.accuracy for s in seeds if (e := store.eval(arm_trial_id(arm, s), split)) is not None]
    return sum(accs) / len(accs) if accs else None


KIND_ORDER = {"ensemble": 0, "single": 1, "control": 2}


def rank_arms(arms: list[ArmRecord], scores: dict[str, float | None]) -> list[tuple[ArmRecord, float]]:
    """The one ranking of final arms, best first: by selection-split mean over fresh seeds (`scores`), then a
    searched arm before a control (so equal scores never make a control "the best"), fewer members, id.

    Arms without a score are left out, and so is a random draw that built the same set as an ensemble: its
    trials are that ensemble's, and it would otherwise tie with it and be ranked by name."""
    kept = [(a, s) for a in arms if (s := scores.get(a.id)) is not None and not a.meta.get("same_set_as")]
    return sorted(kept, key=lambda x: (-x[1], KIND_ORDER.get(x[0].kind, 3), len(x[0].members), x[0].id))


class FinalStage:
    """Plans the arms, trains what is missing, and records everything in the store. Holds no model."""

    def __init__(self, run_dir: Path, cfg: Config, store: Store, console: Console | None = None):
        self.run_dir = run_dir
        self.cfg = cfg
        self.store = store
        self.console = console or Console(stderr=True)

    # -- the whole stage -----------------------------------------------------------------------------------

    def run(self) -> None:
        from rewardsearch.models import resolve_model
        from rewardsearch.search.loop import Search

        cfg, store = self.cfg, self.store
        if store.get_meta("status") != "done":
            raise RuntimeError(
                f"the search in {str(self.run_dir)!r} has not finished (status {store.get_meta('status')!r}); "
                f"finish it first with `rewardsearch resume {self.run_dir}`"
            )
        t0 = time.time()
        store.set_meta("final_status", "running")
        store.event("final_started", seeds=arm_seeds(cfg), ensemble=cfg.ensemble.model_dump(mode="json"))
        model_dir = store.get_meta("model_dir")
        self.search = Search(self.run_dir, cfg, store, console=self.console)
        self.search.model_dir = Path(model_dir) if model_dir and Path(model_dir).is_dir() else resolve_model(cfg.model)
        foreign = self._random_search_best()
        arms = self._plan(foreign)
        self.console.log(
            f"final stage: {len(arms)} arms x {cfg.ensemble.seeds} seeds: " + ", ".join(a.label for a in arms)
        )
        self._train(arms)
        if cfg.ensemble.random_k and cfg.ensemble.random_k_policy == "best":
            extra = self._random_k_for_best()
            if extra:
                self._train(extra)
        store.set_meta("final_status", "done")
        store.event("final_finished", wall_s=time.time() - t0)

    # -- planning ------------------------------------------------------------------------------------------

    def _ranked_vectors(self) -> list[tuple[str, list[int]]]:
        cfg, store = self.cfg, self.store
        out = []
        for row in ranked(leaderboard(store, cfg.seed)):
            e = store.eval(trial_id_for(row["id"], cfg.seed), "dev")
            if e is not None:
                out.append((row["id"], e.correct))
        return out

    def _spec(self, cid: str) -> dict[str, Any]:
        c = self.store.candidate(cid)
        assert c is not None, cid
        return Store.spec_of(c).to_dict()

    def _name(self, cid: str) -> str:
        c = self.store.candidate(cid)
        return c["name"] if c else cid

    def _plan(self, foreign: RewardSpec | None) -> list[ArmRecord]:
        """Phase-one arms (everything but a `best`-policy random draw), upserted into the store."""
        cfg, store = self.cfg, self.store
        e = cfg.ensemble
        vectors = self._ranked_vectors()
        arms: list[ArmRecord] = []
        for rank, (cid, _) in enumerate(vectors[: e.retrain_top], 1):
            arms.append(ArmRecord(
                id=f"single-{cid}", label=self._name(cid), kind="single", strategy="retrain", members=[cid],
                specs=[self._spec(cid)], normalize=e.normalize, meta={"dev_rank": rank},
            ))
        if len(vectors) < 2:
            self.console.log(f"only {len(vectors)} evaluated candidate(s): no ensembles")
        # top-k beyond the candidates evaluated is capped (top-10 of 4 = top-4): same set, trained once, aliased
        for strategy, members, aliases in plan_sets(vectors, e.ks, e.greedy, e.max_members):
            arms.append(ArmRecord(
                id=strategy, label=strategy, kind="ensemble",
                strategy="top-k" if strategy.startswith("top-") else strategy, members=members,
                specs=[self._spec(c) for c in members], normalize=e.normalize, aliases=aliases,
                meta={"requested_ks": e.ks},
            ))
        named: list[tuple[str, list[str], dict[str, Any]]] = []
        if e.diverse_rounds and vectors:
            rounds = {cid: (self.store.candidate(cid) or {}).get("round", 0) for cid, _ in vectors}
            named.append(("diverse-rounds", diverse_rounds(vectors, rounds), {}))
        for k, steps in e.short_top:
            named.append((f"top-{k}@{steps}", top_k(vectors, k), {"steps": steps}))
        for strategy, members, meta in named:
            if len(members) < 2:
                continue
            same = next((a for a in arms if a.kind == "ensemble" and set(a.members) == set(members)
                         and not meta and not a.meta.get("steps")), None)
            if same is not None:  # one reward set, one training: the strategy becomes an alias
                same.aliases.append(strategy)
                continue
            arms.append(ArmRecord(
                id=strategy, label=strategy, kind="ensemble",
                strategy="top-k" if strategy.startswith("top-") else strategy, members=members,
                specs=[self._spec(c) for c in members], normalize=e.normalize, meta=meta,
            ))
        if e.base_control:
            arms.append(ArmRecord(id="base", label="base rewards only", kind="control", strategy="base",
                                  normalize=e.normalize))
        if foreign is not None:
            arms.append(ArmRecord(
                id="random-search", label=f"random search: {foreign.name}", kind="control", strategy="random-search",
                members=[foreign.id], specs=[foreign.to_dict()], normalize=e.normalize,
                meta={"run": str(self._random_run_dir())},
            ))
        for arm in arms:
            store.upsert_arm(arm)
        if e.random_k and e.random_k_policy == "all":
            for k in sorted({len(a.members) for a in arms if a.kind == "ensemble"}):
                for arm in self._random_arms(k, policy="all"):
                    store.upsert_arm(arm)
                    arms.append(arm)
        return arms

    def _random_arms(self, k: int, policy: str, matched: str | None = None) -> list[ArmRecord]:
        """`ensemble.random_draws` random sets of size k: several, because one draw only shows "better than this
        random set". Draw 1 keeps the id `random-{k}` (and its draw) that single-draw runs had."""
        out = []
        pool = [c["id"] for c in self.store.candidates() if c["state"] in ACCEPTED_STATES]
        for draw in range(1, self.cfg.ensemble.random_draws + 1):
            aid = f"random-{k}" if draw == 1 else f"random-{k}-d{draw}"
            existing = next((a for a in self.store.arms() if a.id == aid), None)
            if existing is not None:  # drawn once; a resumed stage keeps the draw
                out.append(existing)
                continue
            if len(pool) < k and draw == 1:
                self.console.log(f"random-{k}: only {len(pool)} accepted candidates; drawing {len(pool)}")
            if not pool:
                return out
            members = random_set(pool, k, self.cfg.seed, draw)
            same = next((a.id for a in self.store.arms() + out
                         if a.kind in ("ensemble", "control") and a.strategy != "base" and a.id != aid
                         and not a.meta.get("same_set_as") and set(a.members) == set(members)), None)
            if same is not None:
                self.console.log(f"{aid} drew the same set as {same}: its trials are shared, it is not ranked")
            out.append(ArmRecord(
                id=aid, label=aid, kind="control", strategy="random-k", members=members,
                specs=[self._spec(c) for c in members], normalize=self.cfg.ensemble.normalize,
                meta={"policy": policy, "pool": len(pool), "matched_ensemble": matched, "same_set_as": same,
                      "draw": draw},
            ))
        return out

    def _random_k_for_best(self) -> list[ArmRecord]:
        seeds = arm_seeds(self.cfg)
        split = self.cfg.ensemble.select_split
        ens = [a for a in self.store.arms() if a.kind == "ensemble"]
        order = rank_arms(ens, {a.id: arm_accuracy(self.store, a, seeds, split) for a in ens})
        if not order:
            return []
        best = order[0][0]
        arms = self._random_arms(len(best.members), policy="best", matched=best.id)
        for arm in arms:
            self.store.upsert_arm(arm)
        self.console.log(f"random controls: {', '.join(a.label for a in arms)} (k of the best ensemble, {best.label})")
        return arms

    # -- the random-mode search control --------------------------------------------------------------------

    def _random_run_dir(self) -> Path | None:
        e = self.cfg.ensemble
        if e.random_run:
            return Path(e.random_run)
        if e.random_search:
            return self.run_dir / "random-search"
        return None

    def _random_search_best(self) -> RewardSpec | None:
        from rewardsearch.search.loop import Search, run_lock

        rdir = self._random_run_dir()
        if rdir is None:
            return None
        if self.cfg.ensemble.random_search and not self.cfg.ensemble.random_run:
            rstore = Store.in_dir(rdir)
            if rstore.get_meta("status") != "done":
                rcfg = self.cfg.model_copy(deep=True)
                rcfg.search.mode = "random"
                rcfg.ensemble.after_run = False
                rcfg.ensemble.random_search = False
                if rstore.get_meta("config") is None:
                    rstore.set_meta("config", rcfg.model_dump(mode="json"))
                    rstore.set_meta("config_hash", rcfg.hash())
                    rstore.set_meta("argv", ["(random-mode control of)", str(self.run_dir)])
                self.console.log(f"random-mode search control in {rdir}")
                with run_lock(rdir):
                    Search(rdir, rcfg, rstore, console=self.console).run()
        elif not (rdir / "run.sqlite").is_file():
            raise FileNotFoundError(f"ensemble.random_run={str(rdir)!r} is not a run directory (no run.sqlite)")
        rstore = Store.in_dir(rdir)
        rcfg_seed = (rstore.get_meta("config") or {}).get("seed", 0)
        best = ranked(leaderboard(rstore, rcfg_seed))
        if not best:
            self.console.log(f"random-mode run {rdir} has no evaluated candidate: no random-search control")
            return None
        row = rstore.candidate(best[0]["id"])
        assert row is not None
        return Store.spec_of(row)

    # -- training ------------------------------------------------------------------------------------------

    def _needs_job(self, tid: str) -> bool:
        rec = self.store.trial(tid)
        if rec is None or rec.state == "pending":
            return True
        self._void_if_lost(rec)
        rec = self.store.trial(tid) or rec
        if rec.state == "failed":
            # a quarantined reward fails again (the report shows the reason); an infrastructure failure is tried
            # again by a later `ensemble DIR`
            return bool(rec.metrics.get("infra"))
        return any(self.store.eval(tid, s) is None for s in FINAL_SPLITS)

    def _void_if_lost(self, rec: TrialRecord) -> None:
        """A finished trial whose weights were lost to a non-finite step (`screen/outputs.py:lost_weights`) is
        trained again: its files move to `lost-N/` beside the new ones, its evaluations leave the store."""
        out_dir = self.run_dir / "trials" / rec.id
        why = outputs.lost_weights(outputs.read(out_dir, []).train)
        if why is None:
            return
        # the store first: a kill before the files move leaves a failed trial whose files still say why, and the
        # next call moves them; the other order could leave stored results with their evidence gone
        if rec.state == "done":
            self.store.void_trial(rec.id, outputs.INFRA_PREFIX + why)
        n = 1
        while (out_dir / f"lost-{n}").exists():
            n += 1
        aside = out_dir / f"lost-{n}"
        aside.mkdir()
        for p in list(out_dir.iterdir()):
            if p.name != "spec.json" and not p.name.startswith("lost-"):   # all the job wrote; the spec is rewritten
                p.rename(aside / p.name)
        self.console.log(f"  {rec.id}: results withdrawn, trained again ({why}); old files in {aside.name}/")

    def _train(self, arms: list[ArmRecord]) -> None:
        cfg, store = self.cfg, self.store
        jobs: list[tuple[bool, Job]] = []
        meta: dict[str, tuple[ArmRecord, TrialRecord]] = {}
        for arm in arms:
            for seed in arm_seeds(cfg):
                tid = arm_trial_id(arm, seed)
                if tid in meta or not self._needs_job(tid):
                    continue
                out_dir = self.run_dir / "trials" / tid
                out_dir.mkdir(parents=True, exist_ok=True)
                spec = dataclasses.replace(
                    self.search._trial_spec(tid, arm.specs, out_dir),
                    seed=seed, eval_splits=list(FINAL_SPLITS), normalize=arm.normalize,
                )
                if arm.meta.get("steps"):  # e.g. the paper's final top-5 at 300 steps
                    # a final arm never stops at a search rung: its own steps are its only rung
                    spec = dataclasses.replace(spec, screen={**spec.screen, "steps": arm.meta["steps"], "rungs": []})
                spec.write(out_dir / "spec.json")
                rec = store.trial(tid) or TrialRecord(
                    id=tid, kind=self._trial_kind(arm), round=self._trial_round(arm), seed=seed,
                    rewards=list(arm.members), candidate_id=arm.members[0] if arm.kind == "single" else None,
                    dir=str(out_dir),
                )
                store.upsert_trial(rec)
                trained = (out_dir / "train.json").is_file() and (out_dir / "adapter").is_dir()
                jobs.append((trained, Job(trial_id=tid, spec_path=out_dir / "spec.json", log_path=out_dir / "log.txt")))
                meta[tid] = (arm, rec)
        if not jobs:
            return
        jobs.sort(key=lambda j: j[0])  # trainings first, evaluation-only jobs fill the slots at the end
        slots = cfg.ensemble.slots or cfg.executor.slots
        n_train = sum(1 for t, _ in jobs if not t)
        self.console.log(f"  {len(jobs)} trials ({n_train} to train, {len(jobs) - n_train} to evaluate), {slots} side by side")
        done = [0]

        def on_done(job: Job, result: TrialResult) -> None:
            arm, rec = meta[job.trial_id]
            done[0] += 1
            self._collect(job, result, arm, rec, f"[{done[0]}/{len(jobs)}]")

        executor_cfg = cfg.executor.model_copy(update={"slots": slots})
        if executor_cfg != cfg.executor:  # ensemble.slots: this stage's own pool
            self.search._executor_obj = None
            self.search.cfg = self.search.cfg.model_copy(update={"executor": executor_cfg})
        self.search.run_jobs([j for _, j in jobs], on_done=on_done, stage="final")

    @staticmethod
    def _trial_kind(arm: ArmRecord) -> str:
        if arm.strategy == "base":
            return "baseline"
        if arm.kind == "single":
            return "candidate"
        return arm.kind

    def _trial_round(self, arm: ArmRecord) -> int:
        if arm.strategy == "base":
            return 0
        if arm.kind == "single":
            c = self.store.candidate(arm.members[0])
            return c["round"] if c else 0
        return self.cfg.search.rounds + 1  # after the search

    def _collect(self, job: Job, result: TrialResult, arm: ArmRecord, rec: TrialRecord, progress: str) -> None:
        store = self.store
        files = outputs.read(job.out_dir, FINAL_SPLITS)
        v = outputs.verdict(result, files, need=FINAL_SPLITS)
        # trained before: this job only evaluated
        outputs.note_run(rec, result, files, job_key="final_eval_wall_s" if rec.state == "done" else "job_wall_s")
        rec.state, rec.reason = v.state, v.reason
        rec.metrics["infra"] = v.infra
        with store.tx():   # evals, trial and event together: a kill leaves all or none of them
            for split in FINAL_SPLITS:
                if split in files.evals and store.eval(rec.id, split) is None:
                    store.add_eval(EvalRecord.from_trial(rec.id, split, files.evals[split]))
            store.upsert_trial(rec)
            if v.state == "done":
                store.event("trial_done", trial=rec.id, stage="final", wall_s=result.wall_s)
            else:
                store.event("trial_failed", trial=rec.id, stage="final", reason=v.reason, infra=v.infra)
        accs = [f"{s} {e.accuracy:.3f}" if (e := store.eval(rec.id, s)) else f"{s} -" for s in FINAL_SPLITS]
        if v.state == "done":
            self.console.log(f"  {progress} {arm.label} seed {rec.seed}: {', '.join(accs)} ({result.wall_s:.0f}s)")
        else:
            self.console.log(f"  {progress} {arm.label} seed {rec.seed}: FAILED {(v.reason or '')[:200]}")
