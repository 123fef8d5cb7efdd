#!/usr/bin/env bash
# AWQ on the GPU host, by hand (CI has no GPU). Builds ktq with CUDA
# (gpu_build.sh), then
#   check: the CudaForward unit tests (GPU attention and weight cache against
#          the CPU); AWQ W4A16 of tiny-llama and the in-repo
#          tiny-deepseek-v3-fp8 with --device cpu and --device cuda: time, how
#          many mappings chose the same grid point (awq_report.json), codes
#          compared (compare_ct_codes.py), held-out ppl of both; the forward's
#          speed (eval-ppl tokens/s) on the CPU, on the GPU, and transformers
#          on the GPU;
#   bench: bench/awq_moe_layer.sh with ktq on the GPU against llm-compressor's
#          AWQModifier (which runs its layers on the GPU when torch sees one).
# SHARED holds models/tiny-llama, models/tiny-qwen3-moe/tokenizer*.json and
# data/{calib,eval}.txt; WHEELS a folder of llm-compressor's wheels
# (tests/interop/README.md). Logs and results go to OUT.
# usage: DEPS=.devdeps SHARED=dir [WHEELS=.whl] tests/interop/gpu_awq.sh check|bench [EXPERTS SAMPLES SEQ_LEN]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT:-/tmp/ktq-gpu-awq}
shared=$(cd "${SHARED:?SHARED must name the test material}" && pwd)
mode=${1:?check or bench}
source "$root/tests/interop/gpu_build.sh"
ktq=$build/ktq
calib=$shared/data/calib.txt
eval_txt=$shared/data/eval.txt

if [ "$mode" = check ]; then
  step "CudaForward unit tests"
  "$build/tests/ktq_unit_tests" --gtest_filter='CudaForward.*' 2>&1 | grep -E "OK|FAIL|PASSED|SKIPPED|Failure|Expected|actual" || true

  for model in "$shared/models/tiny-llama" "$root/examples/models/tiny-deepseek-v3-fp8"; do
    name=$(basename "$model")
    step "AWQ W4A16 asym of $name on the CPU and on the GPU"
    for dev in cpu cuda; do
      rm -rf "$out/$name-$dev"
      s=$(date +%s.%N)
      "$ktq" convert "$model" "$out/$name-$dev" --to compressed-tensors --engine awq --device "$dev" \
        --dataset "$calib" --num-calibration-samples 32 --max-sequence-length 512 -q
      e=$(date +%s.%N)
      python3 -c "print('$name $dev: %.1f s' % ($e - $s))"
    done
    python3 - "$out/$name-cpu/awq_report.json" "$out/$name-cuda/awq_report.json" <<'PY'
import json, sys
a, b = (json.load(open(p))["mappings"] for p in sys.argv[1:3])
same = [k for k in a if a[k]["grid_index"] == b[k]["grid_index"]]
print(f"grid point chosen alike: {len(same)} of {len(a)} mappings")
for k in a:
    if k not in same:
        print(f"  {k}: cpu {a[k]['grid_index']} (loss {a[k]['loss']:.6g}), cuda {b[k]['grid_index']} (loss {b[k]['loss']:.6g})")
PY
    python3 "$root/tests/interop/compare_ct_codes.py" "$out/$name-cpu" "$out/$name-cuda" | tail -3 || true
    for dev in cpu cuda; do
      "$ktq" eval-ppl "$out/$name-$dev" --text "$eval_txt" --max-tokens 32768 --device cuda --json -q > "$out/ppl-$name-$dev.json"
      python3 -c "import json; r=json.load(open('$out/ppl-$name-$dev.json')); print(f'$name AWQ ($dev) held-out ppl {r[\"perplexity\"]:.4f}')"
    done
  done

  step "forward speed: ktq eval-ppl on the CPU and on the GPU, transformers on the GPU"
  for model in "$shared/models/tiny-llama" "$out/tiny-deepseek-v3-fp8-bf16"; do
    [ -d "$model" ] || "$ktq" convert "$root/examples/models/tiny-deepseek-v3-fp8" "$model" --to bf16 -q
    name=$(basename "$model")
    for dev in cpu cuda; do
      "$ktq" eval-ppl "$model" --text "$eval_txt" --device "$dev" --json -q > "$out/speed-$name-$dev.json"
      python3 -c "import json; r=json.load(open('$out/speed-$name-$dev.json')); print(f'$name ktq ($dev): ppl {r[\"perplexity\"]:.5f}, {r[\"windows\"]*r[\"window\"]/r[\"seconds\"]:.0f} tokens/s')"
    done
    python3 "$root/tests/interop/transformers_ppl.py" "$model" "$eval_txt" 2>/dev/null | tail -1
  done
else
  if [ -n "${WHEELS:-}" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl
    export PYTHONPATH=/tmp/site
  fi
  DEVICE=cuda KTQ_BIN=$ktq "$root/bench/awq_moe_layer.sh" "${BENCH_DIR:-/tmp/ktq-awq-bench}" "$shared" "${2:-128}" "${3:-16}" "${4:-512}" \
    | tee "$out/bench.txt"
fi
step done
