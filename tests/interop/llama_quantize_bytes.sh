#!/usr/bin/env bash
# Interop check (run by hand): ktq's GGUF straight from the hub checkpoint
# against llama.cpp's own llama-quantize. For each model and type, llama-quantize
# --pure requantizes ktq's unquantized GGUF in the checkpoint's own dtype (BF16,
# or F16 for tiny-mixtral: widening to F32 is exact, so it sees the same
# weights) and every tensor must come out byte-identical to ktq's direct
# `--type T` file. (Through the other half-precision type a few blocks
# differ: BF16 <-> F16 rounds.) Then the mixtures: llama-quantize without
# --pure (Q4_K_M ...) against `ktq convert --mix NAME`, every tensor's type
# and bytes and general.file_type. llama-quantize: see llama_cpp_ppl.sh for the build
# (target llama-quantize). Needs gguf-py (pip install gguf).
# usage: LLAMA_QUANTIZE=/tmp/llama-build/bin/llama-quantize KTQ_BIN=build/ktq tests/interop/llama_quantize_bytes.sh [SHARED]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ktq=${KTQ_BIN:-ktq}
shared=${1:-$here/../../../shared}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# No shared model is a Qwen2-MoE: one is derived from tiny-qwen3-moe (tests/data/make_tiny_qwen2_moe.py).
mkdir -p "$work/models"
for m in tiny-llama tiny-qwen3-moe tiny-mixtral tiny-deepseek-v3; do ln -s "$shared/models/$m" "$work/models/$m"; done
python3 "$here/../data/make_tiny_qwen2_moe.py" "$shared/models" "$work/models/tiny-qwen2-moe" > /dev/null
for m in tiny-llama tiny-qwen3-moe tiny-mixtral tiny-deepseek-v3 tiny-qwen2-moe; do
  half=BF16
  [ "$m" = tiny-mixtral ] && half=F16
  "$ktq" convert "$work/models/$m" "$work/$m-$half.gguf" --to gguf --type "$half" --quiet
  for t in Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K Q4_K Q5_K Q6_K \
           mix:Q2_K mix:Q3_K_S mix:Q3_K_M mix:Q3_K_L mix:Q4_K_S mix:Q4_K_M mix:Q5_K_S mix:Q5_K_M mix:Q6_K mix:Q8_0 \
           mix:Q4_0 mix:Q4_1 mix:Q5_0 mix:Q5_1; do
    if [ "${t#mix:}" != "$t" ]; then
      t=${t#mix:}
      "$ktq" convert "$work/models/$m" "$work/ktq.gguf" --to gguf --mix "$t" --quiet --overwrite
      "$LLAMA_QUANTIZE" "$work/$m-$half.gguf" "$work/ref.gguf" "$t" 2 > "$work/log" 2>&1 || { tail -5 "$work/log"; exit 1; }
      t="mixture $t"
    else
      "$ktq" convert "$work/models/$m" "$work/ktq.gguf" --to gguf --type "$t" --quiet --overwrite
      "$LLAMA_QUANTIZE" --pure "$work/$m-$half.gguf" "$work/ref.gguf" "$t" 2 > "$work/log" 2>&1 || { tail -5 "$work/log"; exit 1; }
    fi
    python3 - "$m" "$t" "$work/ktq.gguf" "$work/ref.gguf" <<'PY'
import sys
import numpy as np
from gguf import GGUFReader
m, t, a, b = sys.argv[1:]
ours = {x.name: (x.tensor_type, np.asarray(x.data).tobytes()) for x in GGUFReader(a).tensors}
theirs = {x.name: (x.tensor_type, np.asarray(x.data).tobytes()) for x in GGUFReader(b).tensors}
bad = [n for n in theirs if ours.get(n) != theirs[n]]
file_type = lambda p: int(GGUFReader(p).fields["general.file_type"].parts[-1][0])
same_type = file_type(a) == file_type(b)
print(f"{m} {t}: {len(theirs) - len(bad)}/{len(theirs)} tensors byte-identical to llama-quantize" + (f"; differ: {bad[:5]}" if bad else "")
      + ("" if same_type else f"; general.file_type {file_type(a)} vs {file_type(b)}"))
sys.exit(1 if bad or ours.keys() != theirs.keys() or not same_type else 0)
PY
  done
done
