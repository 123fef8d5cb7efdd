#!/usr/bin/env bash
# Interop check (run by hand where torch, transformers, compressed-tensors and
# llm-compressor are installed): W4A16 g128 perplexity of RTN (ktq), GPTQ
# (ktq) and GPTQ (llm-compressor 0.14, same calibration samples, ignore list
# and options; tests/interop/llmcompressor_gptq.py) for the shared models,
# every output loaded by transformers (transformers_ppl.py, the README's
# protocol). Prints a markdown table.
# usage: KTQ_BIN=build/ktq PYTHON=python3 tests/interop/gptq_ppl_table.sh [SHARED_DIR] [SAMPLES] [SEQ_LEN] [DAMP]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ktq=${KTQ_BIN:-ktq}
python=${PYTHON:-python3}
shared=${1:-$here/../../../shared}
samples=${2:-128}
seqlen=${3:-512}
damp=${4:-0.01}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
calib=$shared/data/calib.txt
ppl() { "$python" "$here/transformers_ppl.py" "$1" "$shared/data/eval.txt" 2>/dev/null | sed -n 's/.*: ppl \([0-9.]*\) .*/\1/p'; }
delta() { "$python" -c "print(f'{($1 / $2 - 1) * 100:+.2f} %')"; }
echo "calibration: $samples x $seqlen tokens of calib.txt, dampening $damp, actorder static; llm-compressor with moe_calibrate_all_experts"
printf '| model | bf16 ppl | RTN ppl (delta) | ktq GPTQ, default blend (delta) | ktq GPTQ, --moe-hessian all (delta) | llm-compressor GPTQ (delta) | ktq GPTQ s | llm-compressor s |\n|---|---|---|---|---|---|---|---|\n'
for m in ${MODELS:-tiny-llama tiny-qwen3-moe tiny-mixtral tiny-deepseek-v3}; do
  src=$shared/models/$m
  base=$(ppl "$src")
  "$ktq" convert "$src" "$work/rtn" --to compressed-tensors --quiet
  t0=$(date +%s.%N)
  "$ktq" convert "$src" "$work/gptq" --to compressed-tensors --engine gptq --dataset "$calib" \
    --num-calibration-samples "$samples" --max-sequence-length "$seqlen" --dampening-frac "$damp" --quiet
  t1=$(date +%s.%N)
  "$ktq" convert "$src" "$work/gptq-all" --to compressed-tensors --engine gptq --dataset "$calib" --moe-hessian all \
    --num-calibration-samples "$samples" --max-sequence-length "$seqlen" --dampening-frac "$damp" --quiet
  t2=$(date +%s.%N)
  "$python" "$here/llmcompressor_gptq.py" "$src" "$work/lc" --dataset "$calib" --ignore-from "$work/gptq/config.json" \
    --samples "$samples" --seq-len "$seqlen" --dampening "$damp" > "$work/lc.log" 2>&1 || { tail -20 "$work/lc.log"; exit 1; }
  t3=$(date +%s.%N)
  r=$(ppl "$work/rtn"); g=$(ppl "$work/gptq"); a=$(ppl "$work/gptq-all"); l=$(ppl "$work/lc")
  printf '| %s | %s | %s (%s) | %s (%s) | %s (%s) | %s (%s) | %.1f | %.1f |\n' "$m" "$base" "$r" "$(delta "$r" "$base")" \
    "$g" "$(delta "$g" "$base")" "$a" "$(delta "$a" "$base")" "$l" "$(delta "$l" "$base")" \
    "$(echo "$t1 - $t0" | bc)" "$(echo "$t3 - $t2" | bc)"
  rm -rf "$work/rtn" "$work/gptq" "$work/gptq-all" "$work/lc"
done
