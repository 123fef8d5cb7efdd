#!/usr/bin/env bash
# The GGUF benchmark and the converter comparison on the GPU host's 16-core
# Xeon (no network): builds ktq there (no CUDA needed; DEPS from
# tests/gpu_host_deps.sh), then
#   - bench/gguf_quantize.sh: ktq from the hub checkpoint vs llama-quantize
#     from the BF16 GGUF, Q8_0 / Q4_K / Q6_K, all cores, one run;
#   - tests/interop/convert_hf_to_gguf_compare.py on tiny-llama and on the
#     benchmark's synthetic Qwen3-MoE: ktq's file vs convert_hf_to_gguf.py +
#     llama-quantize (bytes, metadata) and the end-to-end times.
# CONV holds what was carried: bin/ (llama-quantize and its libraries, built
# from the llama-cpp-python 0.3.36 sdist), llama.cpp/ (convert_hf_to_gguf.py,
# conversion/, gguf-py/gguf), models/tiny-llama and models/qwen3-tokenizer.json.
# usage: DEPS=.devdeps CONV=.devconv bench/gguf_gpu_host.sh [bench|compare|all]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
what=${1:-all}
deps=$(cd "${DEPS:-$root/.devdeps}" && pwd)
conv=$(cd "${CONV:-$root/.devconv}" && pwd)
build=${BUILD_DIR:-/tmp/ktq-build-gguf}
export LD_LIBRARY_PATH=$deps/lib:$conv/bin:${LD_LIBRARY_PATH:-}
export PYTHONPATH=$conv/llama.cpp/gguf-py:${PYTHONPATH:-}
if [ ! -x "$build/ktq" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$deps" \
        -DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON -DKTQ_ONEDNN=OFF -DKTQ_BUILD_TESTS=OFF > /dev/null
  cmake --build "$build" -j "$(nproc)" --target ktq > /dev/null
fi
"$build/ktq" doctor | head -5
shared=/tmp/gguf-shared
mkdir -p "$shared/models/tiny-qwen3-moe"
cp "$conv/models/qwen3-tokenizer.json" "$shared/models/tiny-qwen3-moe/tokenizer.json"
work=/tmp/gguf-bench
if [ "$what" = bench ] || [ "$what" = all ]; then
  LLAMA_QUANTIZE=$conv/bin/llama-quantize KTQ_BIN=$build/ktq "$root/bench/gguf_quantize.sh" "$work" "$(nproc)" "$shared"
fi
if [ "$what" = compare ] || [ "$what" = all ]; then
  python3 "$root/tests/interop/convert_hf_to_gguf_compare.py" "$conv/llama.cpp" "$conv/bin/llama-quantize" "$build/ktq" \
      "$conv/models/tiny-llama" /tmp/gguf-compare Q8_0 Q4_K Q6_K
  [ -f "$work/synthetic-qwen3/config.json" ] || python3 "$root/bench/make_synthetic_bf16_moe.py" "$work/synthetic-qwen3" \
      --hidden 2048 --moe-intermediate 768 --experts 128 --layers 4
  cp "$shared/models/tiny-qwen3-moe/tokenizer.json" "$work/synthetic-qwen3/"
  python3 "$root/tests/interop/convert_hf_to_gguf_compare.py" "$conv/llama.cpp" "$conv/bin/llama-quantize" "$build/ktq" \
      "$work/synthetic-qwen3" /tmp/gguf-compare Q4_K
fi
