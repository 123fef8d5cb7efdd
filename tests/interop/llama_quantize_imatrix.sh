#!/usr/bin/env bash
# Interop check (run by hand): quantizing with an importance matrix, ktq
# against llama.cpp's own llama-imatrix + llama-quantize --imatrix.
# For each model: llama-imatrix computes an imatrix on calib.txt over ktq's
# unquantized GGUF (both its GGUF format and the legacy .dat); then for every
# type with an importance path (--pure) and the mixtures, llama-quantize
# --imatrix requantizes that GGUF and `ktq convert --imatrix` goes straight
# from the hub checkpoint: every tensor must be byte-identical, and the
# quantize.imatrix.* keys equal. A control run without the imatrix must
# differ, or the comparison could not tell. Tools: see llama_cpp_ppl.sh for
# the build (targets llama-imatrix llama-quantize). Needs gguf-py.
# usage: LLAMA_BIN=/tmp/llama-build/bin KTQ_BIN=build/ktq tests/interop/llama_quantize_imatrix.sh [SHARED]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ktq=${KTQ_BIN:-ktq}
shared=${1:-$here/../../../shared}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/models"
for m in tiny-llama tiny-qwen3-moe tiny-mixtral tiny-deepseek-v3; do ln -s "$shared/models/$m" "$work/models/$m"; done
python3 "$here/../data/make_tiny_qwen2_moe.py" "$shared/models" "$work/models/tiny-qwen2-moe" > /dev/null
for m in ${MODELS:-tiny-llama tiny-qwen3-moe tiny-mixtral tiny-deepseek-v3 tiny-qwen2-moe}; do
  half=BF16
  [ "$m" = tiny-mixtral ] && half=F16
  "$ktq" convert "$work/models/$m" "$work/$m-$half.gguf" --to gguf --type "$half" --quiet
  for fmt in gguf dat; do
    (cd "$work" && "$LLAMA_BIN/llama-imatrix" -m "$m-$half.gguf" -f "$shared/data/calib.txt" -c 256 --chunks "${CHUNKS:-40}" \
       --no-ppl -o "im.$fmt" --output-format "$fmt" -t "$(nproc)" > log 2>&1) || { tail -5 "$work/log"; exit 1; }
    for t in Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K Q4_K Q5_K Q6_K mix:Q4_K_M mix:Q3_K_M mix:Q2_K mix:Q4_0 mix:Q5_0; do
      if [ "${t#mix:}" != "$t" ]; then
        t=${t#mix:}
        "$ktq" convert "$work/models/$m" "$work/ktq.gguf" --to gguf --mix "$t" --imatrix "$work/im.$fmt" --quiet --overwrite
        "$ktq" convert "$work/models/$m" "$work/plain.gguf" --to gguf --mix "$t" --quiet --overwrite
        (cd "$work" && "$LLAMA_BIN/llama-quantize" --imatrix "im.$fmt" "$m-$half.gguf" ref.gguf "$t" 2 > log 2>&1) || { tail -5 "$work/log"; exit 1; }
        t="mixture $t"
      else
        "$ktq" convert "$work/models/$m" "$work/ktq.gguf" --to gguf --type "$t" --imatrix "$work/im.$fmt" --quiet --overwrite
        "$ktq" convert "$work/models/$m" "$work/plain.gguf" --to gguf --type "$t" --quiet --overwrite
        (cd "$work" && "$LLAMA_BIN/llama-quantize" --pure --imatrix "im.$fmt" "$m-$half.gguf" ref.gguf "$t" 2 > log 2>&1) || { tail -5 "$work/log"; exit 1; }
      fi
      python3 - "$m" "$fmt" "$t" "$work/ktq.gguf" "$work/ref.gguf" "$work/plain.gguf" <<'PY'
import sys
import numpy as np
from gguf import GGUFReader
m, fmt, t, a, b, plain = sys.argv[1:]
def tensors(p):
    return {x.name: (x.tensor_type, np.asarray(x.data).tobytes()) for x in GGUFReader(p).tensors}
def keys(p):
    f = GGUFReader(p).fields
    out = {}
    for k in ("quantize.imatrix.file", "quantize.imatrix.dataset", "quantize.imatrix.entries_count", "quantize.imatrix.chunks_count"):
        if k in f:
            v = f[k].parts[f[k].data[0]]
            out[k] = bytes(v).decode() if f[k].types[0].name == "STRING" else int(v[0])
    return out
ours, theirs, without = tensors(a), tensors(b), tensors(plain)
bad = [n for n in theirs if ours.get(n) != theirs[n]]
changed = sum(1 for n in theirs if without.get(n) != theirs[n])
ko, kt = keys(a), keys(b)
kt["quantize.imatrix.file"] = kt.get("quantize.imatrix.file", "").split("/")[-1]
ko["quantize.imatrix.file"] = ko.get("quantize.imatrix.file", "").split("/")[-1]
print(f"{m} ({fmt} imatrix) {t}: {len(theirs) - len(bad)}/{len(theirs)} tensors byte-identical to llama-quantize --imatrix"
      f" ({changed} differ from the no-imatrix file)" + (f"; differ: {bad[:5]}" if bad else "")
      + ("" if ko == kt else f"; keys {ko} vs {kt}"))
sys.exit(1 if bad or ours.keys() != theirs.keys() or changed == 0 or ko != kt else 0)
PY
    done
  done
done
echo "every file byte-identical to llama-quantize --imatrix"
