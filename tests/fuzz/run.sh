#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, with ASan + UBSan) and runs each for
# SECONDS (default 20) from a seed corpus made of the shared models' real
# headers, configs and a generated index. A crash leaves its input in
# build-fuzz/crashes/ and fails the run; fix it and add a regression test.
# usage: tests/fuzz/run.sh [SECONDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-20}
build=$root/build-fuzz
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" -DKTQ_FUZZ=ON -DKTQ_SANITIZE=ON \
      -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ > /dev/null
cmake --build "$build" -j "$(nproc)" --target fuzz_safetensors_header fuzz_index fuzz_config fuzz_kt_output fuzz_gguf fuzz_imatrix
shared=${KTQ_SHARED_DIR:-$root/../shared}
corpus=$build/corpus
rm -rf "$corpus"; mkdir -p "$corpus"/{header,index,config,kt,gguf,imatrix} "$build/crashes"
cp "$root"/tests/golden/imatrix/* "$corpus/imatrix/"  # llama-imatrix files, both formats
python3 "$root/tests/fuzz/make_seeds.py" "$corpus" "$root/examples/models" "$shared/models"
for target in header:fuzz_safetensors_header index:fuzz_index config:fuzz_config kt:fuzz_kt_output gguf:fuzz_gguf \
              imatrix:fuzz_imatrix; do
  dir=${target%%:*}; exe=${target##*:}
  echo "== $exe for ${seconds}s"
  "$build/tests/$exe" "$corpus/$dir" -max_total_time="$seconds" -max_len=65536 -timeout=10 \
      -artifact_prefix="$build/crashes/$exe-" -print_final_stats=1 2>&1 | grep -E "^(#|stat::number_of_executed_units|==|SUMMARY)" | tail -3
done
echo "fuzzing found nothing"
