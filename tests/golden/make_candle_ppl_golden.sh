#!/usr/bin/env bash
# Makes tests/golden/candle_ppl.json: llama.cpp's perplexity (llama-perplexity,
# its protocol: 256-token windows, second half scored, the first CHUNKS
# windows of eval.txt) of the GGUF files that
# wrappers/rust/candle-check/tests/candle_models.rs writes and runs through
# Candle. The Rust test asserts Candle's perplexity is within 1 % of these.
# Mixtral is scored here with its experts stacked (llama.cpp's layout); the
# Candle test reads the split layout of the same blocks.
# llama-perplexity is built as tests/interop/llama_cpp_ppl.sh describes.
# usage: LLAMA_PPL=/tmp/llama-build/bin/llama-perplexity KTQ_BIN=build/ktq tests/golden/make_candle_ppl_golden.sh [SHARED]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ktq=${KTQ_BIN:-ktq}
shared=${1:-$here/../../../shared}
chunks=${CHUNKS:-20}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cases=("tiny-llama Q8_0" "tiny-llama Q4_K_M" "tiny-mixtral Q4_K_M")
entries=()
for c in "${cases[@]}"; do
  read -r model mix <<< "$c"
  "$ktq" convert "$shared/models/$model" "$work/m.gguf" --to gguf --mix "$mix" --quiet --overwrite
  ppl=$("$LLAMA_PPL" -m "$work/m.gguf" -f "$shared/data/eval.txt" -c 256 -b 256 --chunks "$chunks" -t "$(nproc)" 2>&1 |
        sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p')
  [ -n "$ppl" ] || { echo "llama-perplexity failed on $model $mix" >&2; exit 1; }
  echo "$model/$mix: $ppl" >&2
  entries+=("\"$model/$mix\": $ppl")
done
{
  echo "{"
  echo "  \"about\": \"llama-perplexity (llama-cpp-python 0.3.36 sdist) of ktq's GGUF files; made by tests/golden/make_candle_ppl_golden.sh\","
  echo "  \"chunks\": $chunks,"
  echo "  \"llama_cpp_ppl\": {"
  for i in "${!entries[@]}"; do
    sep=","; [ "$i" -eq $((${#entries[@]} - 1)) ] && sep=""
    echo "    ${entries[$i]}$sep"
  done
  echo "  }"
  echo "}"
} > "$here/candle_ppl.json"
cat "$here/candle_ppl.json"
