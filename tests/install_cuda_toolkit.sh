#!/usr/bin/env bash
# Installs a CUDA 13 compiler toolchain from PyPI wheels (nvcc, nvvm, crt,
# cudart, cccl, and the cuBLAS / cuSOLVER libraries ktq links, with what
# cuSOLVER itself links: cuSPARSE, nvJitLink) into PREFIX (default /opt/ktq-cuda) with the layout CMake's
# FindCUDAToolkit expects, so machines without NVIDIA's apt repository (CI)
# can compile ktq's CUDA sources. Running needs a GPU and driver; compiling
# does not.
# usage: install_cuda_toolkit.sh [PREFIX]
set -euo pipefail
prefix=${1:-/opt/ktq-cuda}
if [ -x "$prefix/bin/nvcc" ] && [ -e "$prefix/include/cusolverDn.h" ]; then echo "CUDA toolkit already in $prefix"; exit 0; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download -q --disable-pip-version-check --no-deps -d "$work" \
  "nvidia-cuda-nvcc==13.*" "nvidia-cuda-runtime==13.*" "nvidia-cuda-crt==13.*" "nvidia-nvvm==13.*" "nvidia-cuda-cccl==13.*" \
  "nvidia-cublas==13.*" "nvidia-cusolver==12.*" "nvidia-cusparse==12.*" "nvidia-nvjitlink==13.*"
mkdir -p "$work/x"
for w in "$work"/*.whl; do python3 -m zipfile -e "$w" "$work/x"; done
mkdir -p "$prefix"
cp -a "$work/x/nvidia/cu13/." "$prefix/"
chmod +x "$prefix"/bin/* "$prefix"/nvvm/bin/* 2>/dev/null || true
# CMake looks for lib64/ and the unversioned libcudart.so.
[ -e "$prefix/lib64" ] || ln -s lib "$prefix/lib64"
for lib in cudart cublas cublasLt cusolver cusparse nvJitLink; do
  [ -e "$prefix/lib/lib$lib.so" ] || ln -s "$(cd "$prefix/lib" && ls "lib$lib.so."* | head -1)" "$prefix/lib/lib$lib.so"
done
# cccl ships its headers in its own folder on some versions.
if [ -d "$prefix/cccl/include" ] && [ ! -d "$prefix/include/cuda/std" ]; then cp -a "$prefix/cccl/include/." "$prefix/include/"; fi
"$prefix/bin/nvcc" --version | tail -1
