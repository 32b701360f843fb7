"""Fault hooks for tests and drills: make a trial process fail the way real infrastructure fails.

    REWARDSEARCH_FAULT="MODE[@TRIAL_GLOB][xN]"     e.g. "kill@t-*x1", "oom", "hang@baseline-s0"

MODE: `kill` (the process SIGKILLs itself, as the OOM killer would), `hang` (sleeps past any deadline), `raise`
(a RuntimeError), `oom` (torch's CUDA OutOfMemoryError), `hostoom` (MemoryError), `killparent` (SIGKILLs its
parent: under `ray` the task's worker, as when a node is lost; under `local` that is the driver itself), `nangrad`
(a NaN gradient at optimizer step 2, as the H200 runs saw: `screen/nonfinite.py` must skip it), `nangrads` (NaN
gradients at every step from 2 on). TRIAL_GLOB limits it to matching
trial ids (fnmatch; default every trial); xN fires on the first N attempts only (the executor sets
`REWARDSEARCH_ATTEMPT`), so a retried trial then succeeds. Unset, nothing happens: the hook costs one getenv.
Several faults are separated by commas; the first matching one fires.
"""

from __future__ import annotations

import fnmatch
import os
import signal
import time

from rewardsearch.execute.base import ATTEMPT_ENV

FAULT_ENV = "REWARDSEARCH_FAULT"
MODES = ("kill", "hang", "raise", "oom", "hostoom", "killparent", "nangrad", "nangrads")
NAN_MODES = {"nangrad": (2, False), "nangrads": (2, True)}   # (first step, every step from it on)


def parse(text: str) -> list[tuple[str, str, int | None]]:
    """`"kill@t-*x1,oom"` -> `[("kill", "t-*", 1), ("oom", "*", None)]`."""
    out = []
    for item in filter(None, (x.strip() for x in text.split(","))):
        times: int | None = None
        head, sep, n = item.rpartition("x")
        if sep and n.isdigit():
            item, times = head, int(n)
        mode, _, glob = item.partition("@")
        if mode not in MODES:
            raise ValueError(f"{FAULT_ENV}={text!r}: mode {mode!r} is not one of {', '.join(MODES)}")
        out.append((mode, glob or "*", times))
    return out


def _matching(trial_id: str) -> str | None:
    """The first configured fault mode that applies to this trial and attempt."""
    text = os.environ.get(FAULT_ENV)
    if not text:
        return None
    attempt = int(os.environ.get(ATTEMPT_ENV, "1"))
    for mode, glob, times in parse(text):
        if fnmatch.fnmatchcase(trial_id, glob) and (times is None or attempt <= times):
            return mode
    return None


def nan_grad_poison(trial_id: str) -> tuple[int, bool] | None:
    """For `nangrad`/`nangrads`: the step at which the trial's guard poisons a gradient, and whether every one after."""
    return NAN_MODES.get(_matching(trial_id) or "")


def maybe_fault(trial_id: str) -> None:
    """Fire the configured fault for this trial and attempt, if any (the NaN modes fire inside training)."""
    mode = _matching(trial_id)
    if mode is not None and mode not in NAN_MODES:
        attempt = int(os.environ.get(ATTEMPT_ENV, "1"))
        print(f"fault hook: {mode} (attempt {attempt})", flush=True)
        if mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "killparent":
            os.kill(os.getppid(), signal.SIGKILL)
            time.sleep(10**6)   # PR_SET_PDEATHSIG ends this process with its parent
        if mode == "hang":
            time.sleep(10**6)
        if mode == "raise":
            raise RuntimeError("injected fault (REWARDSEARCH_FAULT)")
        if mode == "oom":
            import torch

            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected fault)")
        if mode == "hostoom":
            raise MemoryError("injected fault (REWARDSEARCH_FAULT)")
        return
