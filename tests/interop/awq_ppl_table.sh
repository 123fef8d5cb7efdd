#!/usr/bin/env bash
# Interop check (run by hand where torch, transformers, compressed-tensors and
# llm-compressor are installed): W4A16 asymmetric g128 perplexity of RTN,
# ktq AWQ (default, and with AutoAWQ's clipping search: --awq-clip), ktq GPTQ and
# llm-compressor 0.14's AWQ (same calibration samples and ignore list;
# tests/interop/llmcompressor_awq.py) for the shared models, every output
# loaded by transformers (transformers_ppl.py, the README's protocol).
# Prints a markdown table.
# usage: KTQ_BIN=build/ktq PYTHON=python3 tests/interop/awq_ppl_table.sh [SHARED_DIR] [SAMPLES] [SEQ_LEN]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ktq=${KTQ_BIN:-ktq}
python=${PYTHON:-python3}
shared=${1:-$here/../../../shared}
samples=${2:-128}
seqlen=${3:-512}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
calib=$shared/data/calib.txt
ppl() { "$python" "$here/transformers_ppl.py" "$1" "$shared/data/eval.txt" 2>/dev/null | sed -n 's/.*: ppl \([0-9.]*\) .*/\1/p'; }
delta() { "$python" -c "print(f'{($1 / $2 - 1) * 100:+.2f} %')"; }
cal=(--dataset "$calib" --num-calibration-samples "$samples" --max-sequence-length "$seqlen" --quiet)
echo "calibration: $samples x $seqlen tokens of calib.txt; W4A16 asymmetric, group 128, ktq's default ignore list (kt-kernel's)"
printf '| model | bf16 ppl | RTN (delta) | ktq AWQ (delta) | ktq AWQ --awq-clip (delta) | llm-compressor AWQ (delta) | ktq GPTQ (delta) | ktq AWQ s | llm-compressor AWQ s |\n|---|---|---|---|---|---|---|---|---|\n'
for m in ${MODELS:-tiny-llama tiny-qwen3-moe tiny-mixtral}; do
  src=$shared/models/$m
  base=$(ppl "$src")
  "$ktq" convert "$src" "$work/rtn" --to compressed-tensors --scheme W4A16_ASYM --quiet
  t0=$(date +%s.%N)
  "$ktq" convert "$src" "$work/awq" --to compressed-tensors --engine awq "${cal[@]}"
  t1=$(date +%s.%N)
  "$ktq" convert "$src" "$work/awq-clip" --to compressed-tensors --engine awq --awq-clip "${cal[@]}"
  "$ktq" convert "$src" "$work/gptq" --to compressed-tensors --engine gptq --scheme W4A16_ASYM "${cal[@]}"
  t2=$(date +%s.%N)
  "$python" "$here/llmcompressor_awq.py" "$src" "$work/lc" --dataset "$calib" --ignore-from "$work/awq/config.json" \
    --samples "$samples" --seq-len "$seqlen" > "$work/lc.log" 2>&1 || { tail -20 "$work/lc.log"; exit 1; }
  t3=$(date +%s.%N)
  r=$(ppl "$work/rtn"); a=$(ppl "$work/awq"); n=$(ppl "$work/awq-clip"); l=$(ppl "$work/lc"); g=$(ppl "$work/gptq")
  printf '| %s | %s | %s (%s) | %s (%s) | %s (%s) | %s (%s) | %s (%s) | %.1f | %.1f |\n' "$m" "$base" \
    "$r" "$(delta "$r" "$base")" "$a" "$(delta "$a" "$base")" "$n" "$(delta "$n" "$base")" \
    "$l" "$(delta "$l" "$base")" "$g" "$(delta "$g" "$base")" "$(echo "$t1 - $t0" | bc)" "$(echo "$t3 - $t2" | bc)"
  rm -rf "$work/rtn" "$work/awq" "$work/awq-clip" "$work/gptq" "$work/lc"
done
