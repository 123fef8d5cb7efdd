#!/usr/bin/env bash
# Builds ktq with CUDA on a GPU host and runs the tests there (the CUDA test
# runs instead of skipping), then `ktq doctor` and, with --bench, the
# benchmark. For hosts without network: point DEPS at a prefix from
# tests/gpu_host_deps.sh (hwloc, nlohmann-json, CLI11, GoogleTest, PCRE2,
# LAPACKE; every library is then taken from it, pkg-config off, and oneDNN is
# left out) and KTQ_SHARED_DIR at the test models. GPTQ on the GPU and its
# benchmark: tests/interop/gpu_gptq.sh.
# usage: DEPS=/path/prefix KTQ_SHARED_DIR=/path/shared tests/gpu_host.sh [--bench]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-/tmp/ktq-build-cuda}
deps=${DEPS:-}
args=(-DCMAKE_BUILD_TYPE=Release -DKTQ_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHS:-90})
[ -n "$deps" ] && args+=("-DCMAKE_PREFIX_PATH=$deps" -DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON -DKTQ_ONEDNN=OFF) &&
  export LD_LIBRARY_PATH=$deps/lib:${LD_LIBRARY_PATH:-}
[ -n "${KTQ_SHARED_DIR:-}" ] && args+=("-DKTQ_SHARED_DIR=$KTQ_SHARED_DIR")
cmake -S "$root" -B "$build" -G Ninja "${args[@]}" > /dev/null
cmake --build "$build" -j "$(nproc)"
"$build/ktq" doctor
ctest --test-dir "$build" --output-on-failure -j 4 -E '^consumer\.'
"$build/tests/ktq_unit_tests" --gtest_filter='Cuda*'
if [ "${1:-}" = "--bench" ]; then KTQ_BIN=$build/ktq "$root/bench/convert_bf16.sh" "$build/bench"; fi
