"""A stand-in job for executor tests: `python -m fake_job SPEC.json` records where it ran, then sleeps a little.

It writes `ran.json` (its CUDA_VISIBLE_DEVICES, OMP threads, attempt, start and end) into the spec's directory and
removes `remove_me` there if present (the Ray executor must ship that removal back too). It goes through the same
fault hooks as a trial (`execute/faults.py`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from rewardsearch.execute.faults import maybe_fault


def main() -> int:
    spec_path = Path(sys.argv[1])
    spec = json.loads(spec_path.read_text())
    out = spec_path.parent
    maybe_fault(spec["trial_id"])
    t0 = time.time()
    time.sleep(spec.get("sleep_s", 0.5))
    (out / "remove_me").unlink(missing_ok=True)
    (out / "ran.json").write_text(json.dumps({
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "omp": os.environ.get("OMP_NUM_THREADS"),
        "attempt": os.environ.get("REWARDSEARCH_ATTEMPT"), "start": t0, "end": time.time(),
    }))
    return spec.get("exit", 0)


if __name__ == "__main__":
    raise SystemExit(main())
