#!/usr/bin/env bash
# Does feedback help? The same proposer with and without the ranked history, same budget, then mean dev accuracy
# by round for both (the paper's control, arXiv 2605.02073). Default: the evolve proposer on the gpu preset.
#
#   bash scripts/feedback_vs_random.sh runs/fvr                       # gpu preset, 3 rounds, evolve
#   bash scripts/feedback_vs_random.sh runs/fvr search.rounds=5       # any KEY=VALUE override goes to both runs
#   PRESET=smoke bash scripts/feedback_vs_random.sh runs/fvr-cpu      # the same on CPU (minutes, tiny budget)
#   PARALLEL=1 bash scripts/feedback_vs_random.sh runs/fvr            # both runs at once (one GPU holds both)
#
# A run directory that already exists is resumed, not restarted. Round 1 is identical in both modes (same seed,
# no history yet); from round 2 on, `feedback` breeds from the ranked candidates and `random` draws fresh ones.
set -euo pipefail
out=${1:-runs/feedback-vs-random}
shift || true
preset=${PRESET:-gpu}
mkdir -p "$out"
# The console script where the package is installed; `python3 -m` where it is only on PYTHONPATH (the device).
if command -v rewardsearch >/dev/null 2>&1; then rs=(rewardsearch); else rs=(python3 -m rewardsearch.cli); fi

one() {
  local mode=$1; shift
  if [ -f "$out/$mode/run.sqlite" ]; then
    "${rs[@]}" resume "$out/$mode"
  else
    "${rs[@]}" run --preset "$preset" --out "$out/$mode" search.rounds=3 "search.mode=$mode" "$@"
  fi
}

if [ "${PARALLEL:-0}" = 1 ]; then
  one feedback "$@" > "$out/feedback.log" 2>&1 &
  f=$!
  one random "$@" > "$out/random.log" 2>&1 &
  r=$!
  wait $f
  wait $r
else
  one feedback "$@"
  one random "$@"
fi
python3 scripts/mode_summary.py "$out/feedback" "$out/random" | tee "$out/summary.md"
