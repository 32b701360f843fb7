#!/usr/bin/env bash
# Issue 10 on one warm accelerator machine, across device calls: one search in which every candidate trains the
# full budget *and* stops at every rung to be evaluated there (`screen.keep=1.0`), with the pre-screen recording
# its verdicts instead of applying them (`prescreen.reject=false`). `benchmarks/halving_replay.py` then replays
# successive halving and the pre-screen on that one run's records (same candidates, seeds and rung results by
# construction) and compares the cost and the top 5 with the full budget's.
#
#   source .dev/common/setup.sh >/dev/null 2>&1; bash scripts/gpu_halving.sh start; bash scripts/gpu_halving.sh wait 540
#   ... (next calls) bash scripts/gpu_halving.sh wait 560 ... then: bash scripts/gpu_halving.sh pack
# RS_HALVING_ARGS: more KEY=VALUE overrides (e.g. executor.slots=3). `stop` interrupts the driver (SIGINT).
set -u
SELF=$(realpath "$0")
cd "$(dirname "$0")/.."
R=${RS_BG_DIR:-/root/rsdev}
D=$R/hvr
mkdir -p "$R/logs"
CLI=(python3 -m rewardsearch.cli)
# A job started in the background by a non-interactive shell inherits SIGINT ignored, and neither bash (`trap`) nor
# Python undo that: reset it before exec, so `stop` (SIGINT: trials stop at their last checkpoint) works.
SIGINT_DEFAULT=(python3 -c "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])")
ARGS=(search.rounds=1 search.candidates_per_round=20 screen.steps=30 "screen.rungs=[10,30]" screen.keep=1.0
      screen.rung_dev_size=128 screen.checkpoint_every=10 executor.slots=4 prescreen.reject=false)
case ${1:-} in
start)
  python3 -c "import rewardsearch" 2>/dev/null || { echo "source .dev/common/setup.sh first" >&2; exit 1; }
  rm -f "$R/hvr.done"
  if [ -n "${RS_QWEN_MODEL:-}" ]; then   # the named testbed model resolves from the cache (as gpu_proof.sh does)
    cache=${REWARDSEARCH_CACHE:-$HOME/.cache/rewardsearch}/models
    mkdir -p "$cache" && ln -sfn "$RS_QWEN_MODEL" "$cache/Qwen2.5-Coder-0.5B-Instruct"
  fi
  setsid nohup nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader -l 5 > "$R/logs/smi.log" 2>&1 &
  # the driver and its done marker in one setsid'd process: the call's own shell is killed when the call ends
  setsid nohup bash "$SELF" _run > "$R/logs/hvr.log" 2>&1 < /dev/null &
  sleep 2; echo started ;;
_run)
  # shellcheck disable=SC2086
  if [ -f "$D/run.sqlite" ]; then "${SIGINT_DEFAULT[@]}" "${CLI[@]}" resume "$D"
  else "${SIGINT_DEFAULT[@]}" "${CLI[@]}" run --preset gpu --out "$D" "task.data_dir=${RS_GSM8K_DIR:?source setup.sh first}" "${ARGS[@]}" \
         ${RS_HALVING_ARGS:-}; fi
  echo done > "$R/hvr.done" ;;
wait)
  end=$(( $(date +%s) + ${2:?seconds} ))
  while [ "$(date +%s)" -lt "$end" ] && [ ! -f "$R/hvr.done" ]; do sleep 5; done
  grep -E "rung|FAILED|rejected|pre-screen|Error|error" "$R/logs/hvr.log" | tail -12 | cut -c1-220
  echo "done: $([ -f "$R/hvr.done" ] && echo yes || echo no) after $(( $(date +%s) - end + ${2} )) s" ;;
stop)
  pkill -INT -f "rewardsearch[.]cli (run|resume)"; end=$(( $(date +%s) + ${2:-90} ))
  while pgrep -f "rewardsearch[.]cli (run|resume)" >/dev/null && [ "$(date +%s)" -lt "$end" ]; do sleep 3; done
  echo "drivers left: $(pgrep -fc "rewardsearch[.]cli (run|resume)")" ;;
pack)
  out=${OUT:?the device call sets OUT}
  [ -f "$D/run.sqlite" ] && "${CLI[@]}" pack "$D" --out "$out" --budget-mb 28 --part-mb 14 2>&1 | tail -1
  "${CLI[@]}" status "$D" 2>&1 | tail -30
  sort -t, -k2 -n "$R/logs/smi.log" | tail -1 | sed 's/^/peak nvidia-smi (by memory): /'
  tar czf "$out/logs.tgz" -C "$R" logs ;;
*) echo "usage: $0 start | wait SECONDS | stop [SECONDS] | pack" >&2; exit 2 ;;
esac
