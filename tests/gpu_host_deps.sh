#!/usr/bin/env bash
# Fills PREFIX (default .devdeps) with the build dependencies that the GPU
# host (no network, no pkg-config, its own CUDA Toolkit) lacks, copied from
# this Debian 12 machine's packages after tests/setup_deps.sh: hwloc,
# nlohmann-json, CLI11, GoogleTest, PCRE2, OpenSSL's libcrypto, LAPACKE with the reference
# LAPACK/BLAS (no OpenBLAS: 36 MB would not travel) and their Fortran
# runtime. oneDNN is left out (40 MB): build there with -DKTQ_ONEDNN=OFF.
# tests/gpu_host.sh takes the prefix as DEPS.
# usage: tests/gpu_host_deps.sh [PREFIX]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
prefix=${1:-$root/.devdeps}
lib=/usr/lib/x86_64-linux-gnu
mkdir -p "$prefix/include" "$prefix/lib" "$prefix/share/cmake" "$prefix/lib/x86_64-linux-gnu"
cp -a /usr/include/hwloc.h /usr/include/hwloc /usr/include/nlohmann /usr/include/CLI /usr/include/gtest \
      /usr/include/pcre2.h /usr/include/lapacke.h /usr/include/lapacke_config.h /usr/include/lapacke_mangling.h \
      /usr/include/lapacke_utils.h "$prefix/include/"
cp -a /usr/include/openssl "$prefix/include/"
cp -a /usr/include/x86_64-linux-gnu/openssl/. "$prefix/include/openssl/"  # configuration.h, opensslconf.h
cp -a /usr/share/cmake/nlohmann_json /usr/share/cmake/CLI11 "$prefix/share/cmake/"
mkdir -p "$prefix/lib/x86_64-linux-gnu/cmake"
cp -a $lib/libgtest.a $lib/libgtest_main.a "$prefix/lib/x86_64-linux-gnu/"
# Where GTestTargets.cmake expects itself: four folders below the prefix, as in /usr.
cp -a $lib/cmake/GTest "$prefix/lib/x86_64-linux-gnu/cmake/"
cp -a $lib/libhwloc.so* $lib/libudev.so.1* $lib/libpcre2-8.so* $lib/liblapacke.so* $lib/libtmglib.so* \
      $lib/libgfortran.so.5* $lib/libquadmath.so.0* $lib/libcrypto.so* "$prefix/lib/"
# The reference LAPACK and BLAS under the sonames liblapacke links.
cp -L $lib/lapack/liblapack.so.3 $lib/blas/libblas.so.3 "$prefix/lib/"
du -sh "$prefix"
