#!/usr/bin/env bash
# AWQ of one Qwen3-30B-A3B-shaped MoE layer (hidden 2048, moe_intermediate
# 768, EXPERTS routed experts, top-8; synthetic BF16 weights from
# make_synthetic_bf16_moe.py, tiny-qwen3-moe's tokenizer): `ktq convert
# --engine awq` vs llm-compressor 0.14's AWQModifier
# (tests/interop/llmcompressor_awq.py) on the same calibration samples and
# ignore list, same machine, same run, torch on the same thread count; both
# calibrate every expert on all tokens. Prints both wall times and the ratio.
# DEVICE=cuda runs ktq's AWQ on the GPU (llm-compressor uses the GPU by
# itself when torch sees one; its log says which device it used).
# usage: KTQ_BIN=build/ktq PYTHON=/venv/with/llmcompressor/python [DEVICE=cpu|cuda] bench/awq_moe_layer.sh WORK [SHARED] [EXPERTS] [SAMPLES] [SEQ_LEN]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ktq=${KTQ_BIN:-ktq}
python=${PYTHON:-python3}
work=$1
shared=${2:-$here/../../shared}
experts=${3:-128}
samples=${4:-16}
seqlen=${5:-512}
threads=${THREADS:-$(nproc)}
device=${DEVICE:-cpu}
model=$work/qwen3-30b-a3b-layer-e$experts
if [ ! -f "$model/config.json" ]; then
  python3 "$here/make_synthetic_bf16_moe.py" "$model" --hidden 2048 --moe-intermediate 768 --experts "$experts" --layers 1
  cp "$shared/models/tiny-qwen3-moe/tokenizer.json" "$shared/models/tiny-qwen3-moe/tokenizer_config.json" "$model/"
fi
rm -rf "$work/ktq-awq" "$work/lc-awq"
export OMP_NUM_THREADS=$threads
now() { date +%s.%N; }
echo "one MoE layer, $experts experts of 2048 x 768, $samples x $seqlen calibration tokens, $threads threads, ktq on $device"
t0=$(now)
"$ktq" convert "$model" "$work/ktq-awq" --to compressed-tensors --engine awq --device "$device" --dataset "$shared/data/calib.txt" \
  --num-calibration-samples "$samples" --max-sequence-length "$seqlen" --threads "$threads" --quiet
t1=$(now)
"$python" -c "import torch; torch.set_num_threads($threads); import runpy, sys; sys.argv = ['llmcompressor_awq.py', '$model', '$work/lc-awq', '--dataset', '$shared/data/calib.txt', '--ignore-from', '$work/ktq-awq/config.json', '--samples', '$samples', '--seq-len', '$seqlen']; runpy.run_path('$here/../tests/interop/llmcompressor_awq.py', run_name='__main__')" > "$work/lc-awq.log" 2>&1 \
  || { tail -20 "$work/lc-awq.log"; exit 1; }
grep "llm-compressor ran on" "$work/lc-awq.log" || true
t2=$(now)
"$python" - "$t0" "$t1" "$t2" <<'PY'
import sys
t0, t1, t2 = map(float, sys.argv[1:])
print(f"ktq AWQ {t1 - t0:.1f} s, llm-compressor AWQ {t2 - t1:.1f} s: ktq is {(t2 - t1) / (t1 - t0):.2f}x as fast")
PY
