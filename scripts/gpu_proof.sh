#!/usr/bin/env bash
# The GPU proof in one device call: a gpu-preset search on arith, the final stage (ensembles, controls), the report,
# an export; the closing table (best single, best ensemble, base-only, random-k: test accuracy, 95% CI, Holm p) goes
# to stdout, the run directory (without adapters) to $OUT/run.
#
# Usage on the accelerator machine, once the model halves have arrived (../shared/tools/README.md):
#   source .dev/common/setup.sh && bash scripts/gpu_proof.sh
# Extra KEY=VALUE arguments go to `run` (e.g. ensemble.seeds=2); RS_RUN_S / RS_FINAL_S bound the two stages.
#
# Sizing (one device call is at most 600 s, setup included): measured on one H200 (2026-11-26,
# benchmarks/results/2026-11-26-gpu-proof-h200.json) the search wave took 194 s and the final stage 199 s at
# 16 steps of 96 training tokens, 402 s in all with the report and the export:
# wave 1 = baseline + 4 candidates side by side; wave 2 = the final stage (top-2, top-3, greedy-cover, random-2,
# random-3 trained; the best single and the baseline only evaluated on test), all side by side. Evaluation keeps
# 160 new tokens. A stage cut by its timeout (SIGINT) still leaves a report of what finished.
set -uo pipefail
cd "$(dirname "$0")/.."
MODEL=${RS_DEVICE_MODEL:-embedded}
D=${RS_PROOF_DIR:-/root/rsdev/gpu-proof}
OUT=${OUT:-/tmp/gpu-proof-out}
RUN_S=${RS_RUN_S:-270}
FINAL_S=${RS_FINAL_S:-230}
CLI=(python3 -m rewardsearch.cli)
rm -rf "$D"
t0=$(date +%s)
timeout -s INT "$RUN_S" "${CLI[@]}" run --preset gpu --out "$D" "model.name=$MODEL" screen.steps=16 \
  screen.max_completion_length=96 ensemble.seeds=1 ensemble.slots=8 "$@"
t1=$(date +%s)
echo "== search: $((t1 - t0)) s"
timeout -s INT "$FINAL_S" "${CLI[@]}" ensemble "$D"
t2=$(date +%s)
echo "== final stage: $((t2 - t1)) s"
if "${CLI[@]}" report "$D"; then
  python3 scripts/verify_results.py "$D/report/results.json" | tail -1
else
  echo "== no report here (missing scipy/statsmodels/matplotlib/jinja2?): run 'rewardsearch report' on \$OUT/run"
fi
"${CLI[@]}" export "$D" --format trl --top 1 --out "$D/export/best_trl.py"
echo "== total $(( $(date +%s) - t0 )) s"
mkdir -p "$OUT/run"
tar -C "$D" --exclude=adapter --exclude=hf -cf - . | tar -C "$OUT/run" -xf -
