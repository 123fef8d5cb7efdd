#!/usr/bin/env bash
# Runs every test of ktq: unit tests (GoogleTest), the CLI checked by Python
# safetensors, the malformed-input corpus, the installed-tree consumer test -
# first in a release build, then again with AddressSanitizer +
# UndefinedBehaviorSanitizer; the unit tests under ThreadSanitizer; the
# parsers' fuzz targets for a bounded time; a CUDA build (nvcc from PyPI)
# with its tests.
# Tests that need ../shared/models skip with a visible reason when it is absent.
set -euo pipefail
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"  # rustup's default place
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# Each stage's header says how long this script has run so far (CI's 90-minute limit also counts
# .ci/run's first tests/setup_deps.sh).
started=$(date +%s)
stage() { local t=$(( $(date +%s) - started )); echo "== $* [$((t / 60)) min $((t % 60)) s so far]"; }
tests/setup_deps.sh
stage "dependencies ready"
jobs=$(nproc)
# The builds (release, sanitizers, CUDA wheels) and the tests' outputs need
# several GiB; say so up front rather than fail later on a full disk.
free_gib=$(df -P -k "${TMPDIR:-/tmp}" "$root" | awk 'NR > 1 { f = int($4 / 1048576); if (m == "" || f < m) m = f } END { print m }')
echo "ktq tests: ${free_gib} GiB free in ${TMPDIR:-/tmp} and $root"
[ "$free_gib" -ge 8 ] || echo "ktq tests: WARNING: less than 8 GiB free; the CUDA stage and the conversion tests may fail on a full disk"

stage "release build"
# KTQ_BUILD_TESTS=ON explicitly: examples/demo.sh configures the same folder
# with tests off, and CMake would keep that from its cache.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DKTQ_BUILD_TESTS=ON > /dev/null
cmake --build build -j "$jobs"
ctest --no-tests=error --test-dir build --output-on-failure -j "$jobs"

stage "AddressSanitizer + UndefinedBehaviorSanitizer build"
# The sanitized builds keep line tables only (-g1): their reports name every frame's function, file and
# line, and leaving out the variables' debug information cuts their build time by about a quarter.
sanitizer_flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG"
                 "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG")
cmake -S . -B build-asan -G Ninja "${sanitizer_flags[@]}" -DKTQ_SANITIZE=ON -DKTQ_BUILD_TESTS=ON > /dev/null
cmake --build build-asan -j "$jobs"
# The consumer test builds a plain (non-sanitized) program against the
# installed library, which cannot link a sanitized libktq; it ran above.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --no-tests=error --test-dir build-asan --output-on-failure -j "$jobs" -E '^consumer\.'
stage "Rust wrapper (ktq-sys systest + safe crate tests incl. the candle feature, built against the installed library)"
rm -rf build/prefix
cmake --install build --prefix "$root/build/prefix" > /dev/null
(cd wrappers/rust && PKG_CONFIG_PATH="$root/build/prefix/lib/pkgconfig" KTQ_BIN="$root/build/ktq" cargo test --release --locked -q --features ktq/candle &&
   PKG_CONFIG_PATH="$root/build/prefix/lib/pkgconfig" cargo run --release --locked -q -p ktq-sys-systest)

stage "Python wrapper (ctypes, against the installed library; built as a wheel, installed in a venv)"
rm -rf build/py-venv
python3 -m venv build/py-venv
build/py-venv/bin/pip install -q --disable-pip-version-check pytest ./wrappers/python
(cd wrappers/python/tests && PKG_CONFIG_PATH="$root/build/prefix/lib/pkgconfig" KTQ_BIN="$root/build/ktq" \
   "$root/build/py-venv/bin/python" -m pytest -q .)

stage "Go wrapper (SWIG from wrappers/swig/ktq.i, against the installed library)"
(cd wrappers/go && export PKG_CONFIG_PATH="$root/build/prefix/lib/pkgconfig" LD_LIBRARY_PATH="$root/build/prefix/lib" \
   KTQ_BIN="$root/build/ktq" && go vet . && go test -count=1 ./...)

stage "Java wrapper (SWIG from the same interface, JNI glue against the installed library, JUnit 5)"
(cd wrappers/java && PKG_CONFIG_PATH="$root/build/prefix/lib/pkgconfig" KTQ_BIN="$root/build/ktq" mvn -q -B test)

stage "ThreadSanitizer build (thread pool, parallel writers, concurrent models)"
cmake -S . -B build-tsan -G Ninja "${sanitizer_flags[@]}" -DKTQ_TSAN=ON -DKTQ_BUILD_TESTS=ON > /dev/null
# Only what the unit tests need: the command line (its files are the slowest to compile) is not run here.
cmake --build build-tsan -j "$jobs" --target ktq_unit_tests
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  ctest --no-tests=error --test-dir build-tsan --output-on-failure -j "$jobs" -E '^(consumer|python)\.'

stage "fuzzing the parsers (libFuzzer, ${KTQ_FUZZ_SECONDS:-20} s per target)"
tests/fuzz/run.sh "${KTQ_FUZZ_SECONDS:-20}"

stage "CUDA build (compiles the CUDA sources with nvcc from PyPI wheels; GPU tests skip without a GPU)"
cuda_prefix=${KTQ_CUDA_PREFIX:-}
if [ -z "$cuda_prefix" ]; then
  if command -v nvcc > /dev/null; then cuda_prefix=$(dirname "$(dirname "$(command -v nvcc)")")
  elif [ "$(id -u)" -eq 0 ]; then cuda_prefix=/opt/ktq-cuda
  else cuda_prefix=$HOME/.cache/ktq-cuda; fi
fi
[ -x "$cuda_prefix/bin/nvcc" ] || tests/install_cuda_toolkit.sh "$cuda_prefix"
cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DKTQ_CUDA=ON -DKTQ_BUILD_TESTS=ON \
      -DCUDAToolkit_ROOT="$cuda_prefix" -DCMAKE_CUDA_COMPILER="$cuda_prefix/bin/nvcc" > /dev/null
cmake --build build-cuda -j "$jobs"
build-cuda/ktq doctor | grep '^cuda'
ctest --no-tests=error --test-dir build-cuda --output-on-failure -j "$jobs" -E '^(consumer|python)\.'
stage "all tests passed"
