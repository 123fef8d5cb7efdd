#!/usr/bin/env bash
# Interop check (run by hand where torch, transformers and compressed-tensors
# are installed): converts every shared model to compressed-tensors W8A16 and
# W4A16 with ktq, loads each output with transformers (which decompresses it
# through compressed-tensors) and prints a perplexity table against the
# references of ../shared/README.md (protocol: transformers_ppl.py).
# usage: KTQ_BIN=build/ktq PYTHON=python3 tests/interop/ct_ppl_table.sh [SHARED_DIR] [extra ktq convert args...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ktq=${KTQ_BIN:-ktq}
python=${PYTHON:-python3}
shared=${1:-$here/../../../shared}
shift || true
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
declare -A ref=([tiny-qwen3-moe]=23.26 [tiny-mixtral]=30.76 [tiny-llama]=23.64 [tiny-deepseek-v3]=29.17 [tiny-deepseek-v3-fp8]=29.19)
printf '| model | reference ppl | W8A16 ppl | delta | W4A16 ppl | delta |\n|---|---|---|---|---|---|\n'
for m in tiny-qwen3-moe tiny-mixtral tiny-llama tiny-deepseek-v3 tiny-deepseek-v3-fp8; do
  row="| $m | ${ref[$m]} |"
  for scheme in W8A16 W4A16; do
    out=$work/$m-$scheme
    "$ktq" convert "$shared/models/$m" "$out" --to compressed-tensors --scheme "$scheme" --quiet "$@"
    ppl=$("$python" "$here/transformers_ppl.py" "$out" "$shared/data/eval.txt" 2>/dev/null | sed -n 's/.*: ppl \([0-9.]*\) .*/\1/p')
    delta=$("$python" -c "print(f'{($ppl / ${ref[$m]} - 1) * 100:+.2f} %')")
    row="$row $ppl | $delta |"
    rm -rf "$out"
  done
  echo "$row"
done
