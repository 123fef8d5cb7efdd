#!/usr/bin/env bash
# Fresh machine -> working ktq: installs the build dependencies, builds
# libktq and the ktq CLI, then runs the main job on the model shipped in the
# repository: a block-FP8 DeepSeek-V3-style checkpoint dequantized to BF16,
# its routed experts converted to kt-kernel's AMX INT4 layout (what
# kt-kernel's convert_cpu_weights.py writes) for CPU serving, and a
# compressed-tensors W4A16 checkpoint (what llm-compressor writes) for GPUs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tests/setup_deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DKTQ_BUILD_TESTS=OFF > /dev/null
cmake --build build -j "$(nproc)"
model=examples/models/tiny-deepseek-v3-fp8
out=${1:-out/tiny-deepseek-v3-bf16}
kt_out=${2:-out/tiny-deepseek-v3-kt-int4}
ct_out=${3:-out/tiny-deepseek-v3-W4A16}
build/ktq doctor
build/ktq inspect "$model" --plan
rm -rf "$out"
build/ktq convert "$model" "$out" --to bf16
build/ktq inspect "$out"
rm -rf "$kt_out"
build/ktq convert "$model" "$kt_out" --format kt --quant-method int4 --threadpool-count 2
ls "$kt_out"
rm -rf "$ct_out"
build/ktq convert "$model" "$ct_out" --to compressed-tensors --scheme W4A16
ls "$ct_out"
