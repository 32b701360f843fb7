#!/usr/bin/env bash
# The GPU proof (issue 9): the `gpu` preset (qwen-coder-0.5b on GSM8K), then the final stage on the full GSM8K
# test, the report and an export, spread over as many device calls as it takes. Each call continues the run
# from the pack the previous call brought back, works until its time is up (SIGINT: trials stop at their last
# checkpoint), and packs the run into $OUT (at most 8 parts of 15 MiB) for the next call.
#
# Usage on the accelerator machine, once the Qwen parts have arrived (../shared/tools/README.md):
#   source .dev/common/setup.sh && bash scripts/gpu_proof.sh [KEY=VALUE ...]     # first call
#   then copy the returned proof.rspack.* into .dev/proof/ here, carry ".dev/proof", and call it again.
# RS_CALL_S bounds this call's work (default 480 s of a 600 s call: packing and the transfer need the rest).
set -uo pipefail
cd "$(dirname "$0")/.."
CALL_S=${RS_CALL_S:-480}
D=${RS_PROOF_DIR:-/root/rsdev/proof}
OUT=${OUT:-/tmp/gpu-proof-out}
CLI=(python3 -m rewardsearch.cli)
t0=$(date +%s)
left() { echo $(( CALL_S - ($(date +%s) - t0) )); }
# The named testbed model resolves from the cache; on the device it was converted by setup.sh already.
if [ -n "${RS_QWEN_MODEL:-}" ]; then
  cache=${REWARDSEARCH_CACHE:-$HOME/.cache/rewardsearch}/models
  mkdir -p "$cache" && ln -sfn "$RS_QWEN_MODEL" "$cache/Qwen2.5-Coder-0.5B-Instruct"
fi
if [ ! -f "$D/run.sqlite" ] && compgen -G ".dev/proof/proof.rspack.*" >/dev/null; then
  "${CLI[@]}" unpack .dev/proof/proof.rspack.* --out "$D" || exit 1
fi
state() { "${CLI[@]}" status "$D" --json 2>/dev/null | python3 -c "import json,sys; print(json.load(sys.stdin)['status'])"; }
if [ ! -f "$D/run.sqlite" ]; then
  timeout -s INT "$(left)" "${CLI[@]}" run --preset gpu --out "$D" "task.data_dir=${RS_GSM8K_DIR:-}" "$@"
elif [ "$(state)" != "done" ]; then
  timeout -s INT "$(left)" "${CLI[@]}" resume "$D"
fi
echo "== search: $(state) after $(( $(date +%s) - t0 )) s"
if [ "$(state)" = "done" ] && [ "$(left)" -gt 60 ]; then
  # continues an unfinished final stage; RS_ENSEMBLE_ARGS: ensemble.*/executor.* overrides (ensemble.slots=4)
  # shellcheck disable=SC2086
  timeout -s INT "$(left)" "${CLI[@]}" ensemble "$D" ${RS_ENSEMBLE_ARGS:-}
  echo "== final stage after $(( $(date +%s) - t0 )) s"
fi
if "${CLI[@]}" report "$D" >/dev/null 2>&1; then
  python3 scripts/verify_results.py "$D/report/results.json" | tail -1
  "${CLI[@]}" export "$D" --format trl --top 1 --out "$D/export/best_trl.py" || true
fi
"${CLI[@]}" status "$D" | tail -25
mkdir -p "$OUT"
"${CLI[@]}" pack "$D" --out "$OUT" --budget-mb 60 --part-mb 15
echo "== total $(( $(date +%s) - t0 )) s"
