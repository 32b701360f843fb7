#!/usr/bin/env bash
# Long GPU work across device calls on one warm machine (how the 2026-12-02 final stage ran): `start` launches the
# proof (scripts/gpu_proof.sh: search, then the final stage) and, with RS_RANDOM=1, the random-mode search beside
# it (RS_RANDOM=after: once the proof is done; RS_RANDOM_SLOTS, default 2, its trials at once; RS_PROOF=0: the random
# search alone), detached (setsid)
# so they outlive the call; `wait S` returns after S seconds or when they are done; `stop` interrupts them
# (SIGINT: trials stop at their last checkpoint); `pack` packs both run directories into $OUT (<= 28 MiB each) with the logs, for the next call or session to resume.
#   source .dev/common/setup.sh >/dev/null 2>&1; bash scripts/gpu_background.sh start; bash scripts/gpu_background.sh wait 480; bash scripts/gpu_background.sh pack
# Two drivers share the GPU: give them executor slots that fit together (a Qwen trial peaks at ~26 GiB, five fit
# an H200); executor.trial_gpu_gib caps each driver by the memory free when it starts, not by the other's trials.
set -u
SELF=$(realpath "$0")
cd "$(dirname "$0")/.."
R=${RS_BG_DIR:-/root/rsdev}
mkdir -p "$R/logs"
CLI=(python3 -m rewardsearch.cli)
# The random-mode search takes the proof run's own overrides (its stored argv): one record of the protocol.
proof_overrides() {
  [ -f "$R/proof/run.sqlite" ] || { echo "no $R/proof/run.sqlite: unpack or start the proof first" >&2; return 1; }
  python3 - "$R/proof" <<'PY'
import sys
from rewardsearch.store import Store
argv = Store.in_dir(sys.argv[1]).get_meta("argv") or []
print("\n".join(a for a in argv if "=" in a and not a.startswith(("task.data_dir=", "executor.slots=", "search.mode="))))
PY
}
need_cli() {  # each device call is a fresh shell: without setup.sh's PYTHONPATH nothing below can run
  python3 -c "import rewardsearch" 2>/dev/null \
    || { echo "rewardsearch is not importable: source .dev/common/setup.sh first (on its own, not in a pipeline)" >&2; exit 1; }
}
case ${1:-} in
start)
  need_cli
  rm -f "$R"/*.done "$R/stopping"
  if [ -n "${RS_QWEN_MODEL:-}" ]; then   # as gpu_proof.sh does, before either driver looks for the model
    cache=${REWARDSEARCH_CACHE:-$HOME/.cache/rewardsearch}/models
    mkdir -p "$cache" && ln -sfn "$RS_QWEN_MODEL" "$cache/Qwen2.5-Coder-0.5B-Instruct"
  fi
  setsid nohup nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader -l 5 > "$R/logs/smi.log" 2>&1 &
  # Each driver and its done marker live in one setsid'd process: the call's own shell (and any subshell of it)
  # is killed when the call ends, so a marker written by that shell never appears (2026-12-02: the random
  # search waiting for proof.done never started).
  if [ "${RS_PROOF:-1}" = 0 ]; then echo skipped > "$R/proof.done"   # only the random search (the proof is done)
  else setsid nohup bash "$SELF" _proof > "$R/logs/proof.log" 2>&1 < /dev/null &
  fi
  if [ "${RS_RANDOM:-0}" = 1 ] || [ "${RS_RANDOM:-0}" = after ]; then
    setsid nohup bash "$SELF" _random > "$R/logs/random.log" 2>&1 < /dev/null &
  else
    echo skipped > "$R/random.done"
  fi
  sleep 2; echo started ;;
_proof)
  RS_CALL_S=${RS_CALL_S:-1700} OUT=$R/packout RS_ENSEMBLE_ARGS=${RS_ENSEMBLE_ARGS:-ensemble.slots=3} bash scripts/gpu_proof.sh
  echo done > "$R/proof.done" ;;
_random)
  # after: once the proof is done (a final-stage trial holds 38-41 GiB while it evaluates the whole test split,
  # so three of them leave no room for the random search's trials)
  if [ "${RS_RANDOM:-0}" = after ]; then while [ ! -f "$R/proof.done" ]; do sleep 10; done; fi
  [ -f "$R/stopping" ] && { echo stopped > "$R/random.done"; exit 0; }   # `stop` ended the proof: do not start
  if [ -f "$R/random/run.sqlite" ]; then run=(resume "$R/random" "executor.slots=${RS_RANDOM_SLOTS:-2}"); else
    sleep 20   # gpu_proof.sh unpacks the proof run first
    overrides=$(proof_overrides) || { echo failed > "$R/random.done"; exit 1; }
    mapfile -t args <<< "$overrides"
    run=(run --preset gpu --out "$R/random" "task.data_dir=${RS_GSM8K_DIR:?source setup.sh first}" "${args[@]}"
         "executor.slots=${RS_RANDOM_SLOTS:-2}" search.mode=random); fi
  timeout -s INT "${RS_CALL_S:-1700}" "${CLI[@]}" "${run[@]}"
  echo done > "$R/random.done" ;;
wait)
  end=$(( $(date +%s) + ${2:?seconds} ))
  while [ "$(date +%s)" -lt "$end" ] && { [ ! -f "$R/proof.done" ] || [ ! -f "$R/random.done" ]; }; do sleep 10; done
  echo "proof done: $([ -f "$R/proof.done" ] && echo yes || echo no); random: $(cat "$R/random.done" 2>/dev/null || echo running)" ;;
stop)
  # SIGINT to the drivers (the trials stop at their last checkpoint and the stores stay consistent), then wait
  touch "$R/stopping"; pkill -INT -f "rewardsearch[.]cli (run|resume|ensemble)" ; end=$(( $(date +%s) + ${2:-90} ))
  while pgrep -f "rewardsearch[.]cli (run|resume|ensemble)" >/dev/null && [ "$(date +%s)" -lt "$end" ]; do sleep 3; done
  echo "drivers left: $(pgrep -fc "rewardsearch[.]cli (run|resume|ensemble)")" ;;
pack)
  need_cli
  out=${OUT:?the device call sets OUT}
  for d in proof random; do
    [ -f "$R/$d/run.sqlite" ] && "${CLI[@]}" pack "$R/$d" --out "$out" --budget-mb 28 --part-mb 14 2>&1 | tail -1
  done
  tail -c 3000 "$R/logs/proof.log"; echo ----; tail -c 1500 "$R/logs/random.log" 2>/dev/null
  sort -t, -k1 -n "$R/logs/smi.log" | tail -1 | sed 's/^/peak nvidia-smi: /'
  tar czf "$out/logs.tgz" -C "$R" logs ;;
*) echo "usage: $0 start | wait SECONDS | stop [SECONDS] | pack" >&2; exit 2 ;;
esac
