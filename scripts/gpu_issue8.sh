#!/usr/bin/env bash
# Issue 8's remaining measurements on one warm H200, in device calls made back to back (../shared/tools/README.md),
# every one starting with `source .dev/common/setup.sh >/dev/null 2>&1;`:
#   bench         CUDA tests; Qwen GRPO step (TRL's generate beside the fast path; the fast path with cuDNN SDPA
#                 allowed in training); Qwen evaluation of the GSM8K test with decoder variants and a profile
#   smol          the same step and evaluation comparisons for SmolLM2-135M
#   curves start  100-step base-rewards runs, TRL's generate vs the fast path from one seed and the fast path from
#                 two more seeds (run-to-run noise), detached so that it outlives the call; RS_CURVES_ARMS=live:
#                 the fast path from the live adapter vs the merged copy instead, two seeds each
#   curves wait S returns after S seconds or when the curves are done, copying their JSON into $OUT
#   pergpu        aggregate steps/s of 1, 2, 4 fast trials side by side (merged rollout weights, 16 x 256 tokens)
# JSON lands in $OUT (and in benchmarks/results/ on the device).
set -uo pipefail
cd "$(dirname "$0")/.."
M=${RS_QWEN_MODEL:?run source .dev/common/setup.sh first}
D=${RS_GSM8K_DIR:?}
R=${RS_BG_DIR:-/root/rsdev}
mkdir -p "$R"
case ${1:-} in
bench)
  python3 -m pytest -q -x -p no:cacheprovider tests/test_decoder.py tests/test_rollout.py -k cuda 2>&1 | tail -3
  python3 benchmarks/grpo_step.py --model "$M" --label qwen-coder-0.5b --data-dir "$D" --arms trl:5,fast:20 \
    --save-adapter "$R/qad" --timeout 200 --work "$R/b1"
  python3 benchmarks/grpo_step.py --model "$M" --label qwen-coder-0.5b-cudnn --data-dir "$D" --arms fast:20 \
    --set screen.cudnn_attention=true --timeout 100 --work "$R/b2"
  python3 benchmarks/generation.py --model "$M" --adapter "$R/qad" --label qwen-coder-0.5b --data-dir "$D" \
    --variant noalign:cache_align=1 --variant block64:key_block=64 --variant block128:key_block=128 \
    --variant chunk256:prefill_tokens=65536 --variant bucket64:prompt_bucket=64 \
    --variant block128-chunk:key_block=128,prefill_tokens=65536 --profile 8 ;;
smol)
  S=${RS_DEVICE_MODEL:?}
  python3 benchmarks/grpo_step.py --model "$S" --label smollm2-135m --data-dir "$D" --arms trl:5,fast:16 \
    --save-adapter "$R/sad" --timeout 200 --work "$R/b3"
  python3 benchmarks/generation.py --model "$S" --adapter "$R/sad" --label smollm2-135m --data-dir "$D" \
    --hf-batch2 660 --variant block128:key_block=128 ;;
pergpu)
  python3 benchmarks/grpo_step.py --model "$M" --label qwen-coder-0.5b-merged --data-dir "$D" --per-gpu 1,2,4 \
    --steps 14 --timeout 150 --work "$R/b4" ;;
curves)
  case ${2:-} in
  start)
    rm -rf "$R/curves-out" "$R/curves.done"
    C="screen.max_completion_length=256,screen.num_generations=8,screen.prompts_per_step=2"
    C="$C,screen.trl.steps_per_generation=${RS_CURVES_SPG:-4},screen.checkpoint_every=0"
    if [ "${RS_CURVES_ARMS:-trl}" = live ]; then   # the merged rollout copy vs the live adapter, 2 seeds each
      L="$C,screen.generation=fast,screen.rollout_weights=live" G="$C,screen.generation=fast"
      SETTINGS="--setting 'live:$L' --setting 'live-s1:$L,seed=1' --setting 'merged:$G' --setting 'merged-s1:$G,seed=1'"
    else
      SETTINGS="--setting 'trl:$C,screen.generation=trl' --setting 'fast:$C,screen.generation=fast'"
      SETTINGS="$SETTINGS --setting 'fast-s1:$C,screen.generation=fast,seed=1'"
      SETTINGS="$SETTINGS --setting 'fast-s2:$C,screen.generation=fast,seed=2'"
    fi
    OUT="$R/curves-out" setsid nohup bash -c "python3 benchmarks/calibrate.py --model '$M' \
      --label qwen-coder-0.5b-fast-vs-${RS_CURVES_ARMS:-trl} --data-dir '$D' --steps ${RS_CURVES_STEPS:-100} --dev 256 \
      --eval-tokens 256 --timeout 1500 --work '$R/curves' \
      $SETTINGS; \
      echo done > '$R/curves.done'" > "$R/curves.log" 2>&1 < /dev/null &
    sleep 2; echo started ;;
  wait)
    end=$(( $(date +%s) + ${3:-480} ))
    while [ ! -f "$R/curves.done" ] && [ "$(date +%s)" -lt "$end" ]; do sleep 5; done
    for d in "$R"/curves/*/; do [ -f "$d/steps.log" ] && echo "$(basename "$d"): $(wc -l < "$d/steps.log") steps"; done
    tail -5 "$R/curves.log"
    mkdir -p "${OUT:-/tmp}"; cp "$R"/curves-out/*.json "${OUT:-/tmp}/" 2>/dev/null
    [ -f "$R/curves.done" ] && echo curves done || echo curves running ;;
  *) echo "usage: $0 curves start|wait S" >&2; exit 2 ;;
  esac ;;
*) echo "usage: $0 bench|smol|pergpu|curves start|curves wait S" >&2; exit 2 ;;
esac
