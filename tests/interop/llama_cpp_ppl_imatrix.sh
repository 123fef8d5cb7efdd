#!/usr/bin/env bash
# Interop check (run by hand): what an importance matrix buys. For each model,
# llama-imatrix computes one on calib.txt (disjoint from eval.txt) over ktq's
# unquantized GGUF; ktq writes low-bit files with and without it
# (`--imatrix`), and llama-perplexity scores both on eval.txt with its own
# protocol (256-token chunks, second half scored, CHUNKS chunks).
# Tools: see llama_cpp_ppl.sh for the build (llama-imatrix, llama-perplexity).
# usage: LLAMA_BIN=/tmp/llama-build/bin KTQ_BIN=build/ktq tests/interop/llama_cpp_ppl_imatrix.sh [SHARED]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ktq=${KTQ_BIN:-ktq}
shared=${1:-$here/../../../shared}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
types=(${TYPES:-Q2_K Q3_K Q4_0 Q4_K_M})
ppl() {
  "$LLAMA_BIN/llama-perplexity" -m "$1" -f "$shared/data/eval.txt" -c 256 -b 256 --chunks "${CHUNKS:-200}" -t "$(nproc)" 2>&1 |
    sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p'
}
printf '| model | F16 |'; for t in "${types[@]}"; do printf ' %s | %s + imatrix |' "$t" "$t"; done; printf '\n|---|---|'
for t in "${types[@]}"; do printf -- '---|---|'; done; printf '\n'
for m in ${MODELS:-tiny-llama tiny-qwen3-moe tiny-mixtral tiny-deepseek-v3}; do
  "$ktq" convert "$shared/models/$m" "$work/f16.gguf" --to gguf --type F16 --quiet --overwrite
  (cd "$work" && "$LLAMA_BIN/llama-imatrix" -m f16.gguf -f "$shared/data/calib.txt" -c 256 --chunks "${IM_CHUNKS:-100}" \
     --no-ppl -o im.gguf -t "$(nproc)" > log 2>&1) || { tail -5 "$work/log"; exit 1; }
  row="| $m | $(ppl "$work/f16.gguf") |"
  for t in "${types[@]}"; do
    flag=--type; [ "$t" = Q4_K_M ] && flag=--mix
    "$ktq" convert "$shared/models/$m" "$work/q.gguf" --to gguf $flag "$t" --quiet --overwrite
    "$ktq" convert "$shared/models/$m" "$work/qi.gguf" --to gguf $flag "$t" --imatrix "$work/im.gguf" --quiet --overwrite
    row="$row $(ppl "$work/q.gguf") | $(ppl "$work/qi.gguf") |"
  done
  echo "$row"
done
