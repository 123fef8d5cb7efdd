#!/usr/bin/env bash
# By hand: which tokens calibrate a routed expert's up -> down mapping in
# ktq's AWQ (--moe-hessian, shared with GPTQ). W4A16 asymmetric g128 of the
# shared MoE models: RTN, AWQ with every token alike (--moe-hessian all,
# llm-compressor's moe_calibrate_all_experts) and AWQ blending each expert's
# routed tokens with WEIGHTS x all tokens (--moe-hessian blend
# --moe-all-tokens-weight W), each scored with `ktq eval-ppl` (the shared
# protocol; transformers cannot load asymmetric per-expert MoE checkpoints).
# Prints a markdown table. DEVICE=cuda runs AWQ on the GPU.
# usage: KTQ_BIN=build/ktq [DEVICE=cpu] [WEIGHTS="0.2"] [MODELS="tiny-qwen3-moe tiny-mixtral"]
#        tests/interop/awq_moe_ppl.sh [SHARED_DIR] [SAMPLES] [SEQ_LEN]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ktq=${KTQ_BIN:-ktq}
shared=${1:-$here/../../../shared}
samples=${2:-128}
seqlen=${3:-512}
device=${DEVICE:-cpu}
weights=${WEIGHTS:-0.2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cal=(--dataset "$shared/data/calib.txt" --num-calibration-samples "$samples" --max-sequence-length "$seqlen" --quiet)
ppl() {
  "$ktq" eval-ppl "$1" --text "$shared/data/eval.txt" --device "$device" --json -q |
    python3 -c 'import json, sys; print("%.4f" % json.load(sys.stdin)["perplexity"])'
}
delta() { python3 -c "print(f'{($1 / $2 - 1) * 100:+.2f} %')"; }
echo "calibration: $samples x $seqlen tokens of calib.txt; W4A16 asymmetric g128, ktq's default ignore list; AWQ on $device"
header="| model | bf16 | RTN | AWQ, all tokens |"
rule="|---|---|---|---|"
for w in $weights; do header+=" AWQ, blend $w |"; rule+="---|"; done
echo "$header"
echo "$rule"
for m in ${MODELS:-tiny-qwen3-moe tiny-mixtral}; do
  src=$shared/models/$m
  base=$(ppl "$src")
  "$ktq" convert "$src" "$work/rtn" --to compressed-tensors --scheme W4A16_ASYM --quiet
  r=$(ppl "$work/rtn")
  s=$(date +%s)
  "$ktq" convert "$src" "$work/all" --to compressed-tensors --engine awq --device "$device" --moe-hessian all "${cal[@]}"
  a=$(ppl "$work/all")
  row="| $m | $base | $r ($(delta "$r" "$base")) | $a ($(delta "$a" "$base")), $(($(date +%s) - s)) s |"
  for w in $weights; do
    s=$(date +%s)
    "$ktq" convert "$src" "$work/blend-$w" --to compressed-tensors --engine awq --device "$device" \
      --moe-hessian blend --moe-all-tokens-weight "$w" "${cal[@]}"
    b=$(ppl "$work/blend-$w")
    row+=" $b ($(delta "$b" "$base")), $(($(date +%s) - s)) s |"
  done
  echo "$row"
  rm -rf "$work"/*
done
