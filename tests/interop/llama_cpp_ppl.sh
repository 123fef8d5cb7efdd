#!/usr/bin/env bash
# Interop check (run by hand): llama.cpp loads ktq's GGUF files and computes
# perplexity on ../shared/data/eval.txt. llama.cpp is built from the source
# shipped in the llama-cpp-python sdist (PyPI):
#   pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d /tmp/lcp && tar xzf ... -C /tmp/lcp
#   touch vendor/llama.cpp/ggml/ggml.pc.in   # missing from the sdist
#   cmake -S vendor/llama.cpp -B /tmp/llama-build -DLLAMA_CURL=OFF -DGGML_NATIVE=OFF && cmake --build /tmp/llama-build --target llama-perplexity
# llama-perplexity's own protocol: 256-token chunks, the second half of each
# scored, so the numbers are below the shared protocol's; compare the types
# with each other (F16 is the unquantized reference).
# usage: LLAMA_PPL=/tmp/llama-build/bin/llama-perplexity KTQ_BIN=build/ktq tests/interop/llama_cpp_ppl.sh [SHARED]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ktq=${KTQ_BIN:-ktq}
shared=${1:-$here/../../../shared}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
types=(F16 Q8_0 Q6_K Q4_K_M Q4_K Q4_0 MOE_Q4_K)
printf '| model |'; printf ' %s |' "${types[@]}"; printf '\n|---|'; printf -- '---|%.0s' "${types[@]}"; printf '\n'
for m in tiny-llama tiny-qwen3-moe tiny-mixtral tiny-deepseek-v3; do
  row="| $m |"
  for t in "${types[@]}"; do
    "$ktq" convert "$shared/models/$m" "$work/$m-$t.gguf" --to gguf --type "$t" --quiet
    ppl=$("$LLAMA_PPL" -m "$work/$m-$t.gguf" -f "$shared/data/eval.txt" -c 256 -b 256 --chunks "${CHUNKS:-200}" -t "$(nproc)" 2>&1 |
          sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p')
    row="$row ${ppl:-FAILED} |"
    rm -f "$work/$m-$t.gguf"
  done
  echo "$row"
done
