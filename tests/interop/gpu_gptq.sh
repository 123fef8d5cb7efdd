#!/usr/bin/env bash
# GPTQ on the GPU host, by hand (CI has no GPU): builds ktq with CUDA, runs
# the CudaGptq unit tests (CPU and CUDA agree), converts the in-repo
# tiny-deepseek-v3-fp8 with the GPTQ engine on both devices and compares the
# codes tensor by tensor, then, with --bench, bench/gptq_moe_layer.py against
# llm-compressor on a Qwen3-30B-A3B-shaped MoE layer.
# Offline host: DEPS is a prefix from tests/gpu_host_deps.sh, WHEELS a folder
# of llm-compressor's wheels (see tests/interop/README.md), CALIB a text file.
# Logs and results go to OUT (default /tmp/ktq-gpu-gptq).
# usage: DEPS=.devdeps WHEELS=.whl CALIB=file.txt tests/interop/gpu_gptq.sh [--bench [TOKENS]]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT:-/tmp/ktq-gpu-gptq}
source "$root/tests/interop/gpu_build.sh"

step "CudaGptq unit tests"
"$build/tests/ktq_unit_tests" --gtest_filter='CudaGptq.*' 2>&1 | tee "$out/unit.log" | grep -E "codes differ|OK|FAIL|PASSED|SKIPPED"

step "engine: tiny-deepseek-v3-fp8, GPTQ W4A16 on the CPU and on the GPU"
model=$root/examples/models/tiny-deepseek-v3-fp8
for dev in cpu cuda; do
  rm -rf "$out/ds-$dev"
  /usr/bin/time -f "$dev: %e s" "$build/ktq" convert "$model" "$out/ds-$dev" --to compressed-tensors --engine gptq --device "$dev" \
    --dataset "${CALIB:?CALIB must name a calibration text}" --num-calibration-samples 64 --max-sequence-length 512 \
    -q
done
python3 "$root/tests/interop/compare_ct_codes.py" "$out/ds-cpu" "$out/ds-cuda" | tee "$out/engine_compare.txt"
for dev in cpu cuda; do
  rm -rf "$out/ds-all-$dev"
  /usr/bin/time -f "$dev (--moe-hessian all): %e s" "$build/ktq" convert "$model" "$out/ds-all-$dev" --to compressed-tensors \
    --engine gptq --device "$dev" --moe-hessian all --dataset "$CALIB" --num-calibration-samples 64 --max-sequence-length 512 -q
done
python3 "$root/tests/interop/compare_ct_codes.py" "$out/ds-all-cpu" "$out/ds-all-cuda" | tee -a "$out/engine_compare.txt"
# A small GPU budget: the same output as without one.
rm -rf "$out/ds-cuda-small"
"$build/ktq" convert "$model" "$out/ds-cuda-small" --to compressed-tensors --engine gptq --device cuda --max-gpu-memory 300MiB \
  --dataset "$CALIB" --num-calibration-samples 64 --max-sequence-length 512 -q
cmp "$out/ds-cuda/model.safetensors" "$out/ds-cuda-small/model.safetensors" && echo "--max-gpu-memory 300MiB: same bytes"
# The solve spread over two host threads (device 0 twice; several GPUs where there are): same bytes.
rm -rf "$out/ds-cuda-two"
"$build/ktq" convert "$model" "$out/ds-cuda-two" --to compressed-tensors --engine gptq --device cuda --devices 0,0 \
  --max-gpu-memory 300MiB --dataset "$CALIB" --num-calibration-samples 64 --max-sequence-length 512 -q
cmp "$out/ds-cuda/model.safetensors" "$out/ds-cuda-two/model.safetensors" && echo "--devices 0,0: same bytes"

step "forward: ktq eval-ppl on the CPU and with cuBLAS, transformers on the GPU (BF16 copy of the model)"
rm -rf "$out/ds-bf16"
"$build/ktq" convert "$model" "$out/ds-bf16" --to bf16 -q
eval_txt=${EVAL:-$(dirname "$CALIB")/eval.txt}
for dev in cpu cuda; do
  "$build/ktq" eval-ppl "$out/ds-bf16" --text "$eval_txt" --device "$dev" --json -q > "$out/ppl-$dev.json"
  python3 -c "import json; r=json.load(open('$out/ppl-$dev.json')); print(f'ktq eval-ppl ($dev): ppl {r[\"perplexity\"]:.5f}, {r[\"windows\"]*r[\"window\"]/r[\"seconds\"]:.0f} tokens/s')"
done
python3 "$root/tests/interop/transformers_ppl.py" "$out/ds-bf16" "$eval_txt" 2>/dev/null | tail -1

if [ "${1:-}" = "--bench" ]; then
  tokens=${2:-1048576}
  if [ -n "${WHEELS:-}" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl
    export PYTHONPATH=/tmp/site
  fi
  data=${BENCH_DIR:-/tmp/ktq-gptq-bench}
  export PYTHONUNBUFFERED=1
  step "bench data ($tokens tokens)"
  python3 "$root/bench/gptq_moe_layer.py" make "$data" --tokens "$tokens" --corr-rank 32
  step "bench: ktq"
  KTQ_GPTQ_TIMING=1 "$build/ktq_bench_gptq_moe" "$data" "$(nproc)"
  step "bench: llm-compressor"
  python3 "$root/bench/gptq_moe_layer.py" baseline "$data"
  step "bench: report"
  python3 "$root/bench/gptq_moe_layer.py" report "$data" | tee "$out/bench_report.md"
  cp "$data"/*.json "$out/"
fi
step done
