#!/usr/bin/env bash
# Issue 10: successive halving (with the pre-screen) vs the full budget for every candidate, the same candidates
# and seeds (one round of the evolve proposer: round 1 depends only on the seed), then the comparison JSON.
#
#   bash scripts/halving_vs_full.sh runs/hvf                          # gpu preset: 20 candidates, rungs [10, 30]
#   bash scripts/halving_vs_full.sh runs/hvf executor.slots=5          # any KEY=VALUE goes to both runs
#   PRESET=smoke HALVING="screen.rungs=[2,4] screen.keep=0.5" bash scripts/halving_vs_full.sh runs/hvf-cpu \
#       search.candidates_per_round=4 screen.steps=4                  # the same on CPU (minutes, tiny budget)
#
# A run directory that already exists is resumed, not restarted (so a device call that ends mid-run continues).
set -euo pipefail
out=${1:?usage: $0 OUT_DIR [KEY=VALUE ...]}
shift
preset=${PRESET:-gpu}
if command -v rewardsearch >/dev/null 2>&1; then rs=(rewardsearch); else rs=(python3 -m rewardsearch.cli); fi
[ "$preset" = gpu ] && common=(search.rounds=1 search.candidates_per_round=20 screen.steps=30 screen.checkpoint_every=10
                               executor.slots=4) || common=(search.rounds=1)
read -r -a halving <<< "${HALVING:-screen.rungs=[10,30] screen.keep=0.25 screen.keep_within_noise=false screen.rung_dev_size=128}"
full=(screen.rungs=[] prescreen.enabled=false)
data=()
[ -n "${RS_GSM8K_DIR:-}" ] && [ "$preset" = gpu ] && data=("task.data_dir=$RS_GSM8K_DIR")
one() {
  local name=$1; shift
  if [ -f "$out/$name/run.sqlite" ]; then "${rs[@]}" resume "$out/$name"
  else "${rs[@]}" run --preset "$preset" --out "$out/$name" "${data[@]}" "${common[@]}" "$@"; fi
}
mkdir -p "$out"
one halving "${halving[@]}" "$@"
one full "${full[@]}" "$@"
python3 benchmarks/halving_vs_full.py "$out/halving" "$out/full" > "$out/halving_vs_full.json"
echo "wrote $out/halving_vs_full.json"
