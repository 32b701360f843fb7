#!/usr/bin/env bash
# Issue 8's measurements in one device call, once the Qwen parts have arrived (../shared/tools/README.md):
# the CUDA tests, the GRPO step (TRL's generate; fast rollouts from the merged copy; fast through the live LoRA
# modules), then evaluation of the full GSM8K test with the adapter the fast arm trained. JSON lands in
# benchmarks/results/ and, on the device, in $OUT.
#   source .dev/common/setup.sh >/dev/null 2>&1; bash scripts/gpu_bench.sh
set -uo pipefail
cd "$(dirname "$0")/.."
M=${RS_QWEN_MODEL:?run source .dev/common/setup.sh first}
D=${RS_GSM8K_DIR:?}
A=${RS_BENCH_ADAPTER:-/root/rsdev/adapter}
python3 -m pytest -q -x -p no:cacheprovider tests/test_decoder.py tests/test_rollout.py -k cuda 2>&1 | tail -3
python3 benchmarks/grpo_step.py --model "$M" --label qwen-coder-0.5b --data-dir "$D" \
  --arms "${RS_BENCH_ARMS:-trl:5,fast:12,fast-live:12}" --gens 8 --prompts 2 --save-adapter "$A" --timeout 240
python3 benchmarks/generation.py --model "$M" --adapter "$A" --label qwen-coder-0.5b --data-dir "$D" \
  --hf-batch2 "${RS_BENCH_HF_BATCH2:-660}"
