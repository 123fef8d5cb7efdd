#!/usr/bin/env bash
# Runs every test of ktq: unit tests (GoogleTest), the CLI checked by Python
# safetensors, the installed-tree consumer test - first in a release build,
# then again with AddressSanitizer + UndefinedBehaviorSanitizer.
# Tests that need ../shared/models skip with a visible reason when it is absent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tests/setup_deps.sh
jobs=$(nproc)

echo "== release build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"

echo "== AddressSanitizer + UndefinedBehaviorSanitizer build"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKTQ_SANITIZE=ON > /dev/null
cmake --build build-asan -j "$jobs"
# The consumer test builds a plain (non-sanitized) program against the
# installed library, which cannot link a sanitized libktq; it ran above.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs" -E '^consumer\.'
echo "== all tests passed"
