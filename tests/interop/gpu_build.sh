# Sourced by the GPU-host scripts (gpu_gptq.sh, gpu_awq.sh): builds ktq with
# CUDA into $build (BUILD_DIR, default /tmp/ktq-build-cuda) from the
# dependency prefix DEPS (tests/gpu_host_deps.sh; default .devdeps), with
# pkg-config off so that every library comes from DEPS (the host's own
# LAPACKE needs a newer LAPACK than the one in DEPS) and without oneDNN.
# Expects $root and $out; defines step(). Logs go to $out.
build=${BUILD_DIR:-/tmp/ktq-build-cuda}
deps=$(cd "${DEPS:-$root/.devdeps}" && pwd)
mkdir -p "$out"
export LD_LIBRARY_PATH=$deps/lib:${LD_LIBRARY_PATH:-}
step() { echo "== $* ($(date +%T))"; }

step build
rm -f "$build/CMakeCache.txt"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKTQ_CUDA=ON -DKTQ_ONEDNN=OFF \
      -DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHS:-90} -DCMAKE_PREFIX_PATH="$deps" \
      -DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON > "$out/cmake.log"
cmake --build "$build" -j "$(nproc)" > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
"$build/ktq" doctor | grep -i cuda || true
