#!/usr/bin/env bash
# Interop check (run by hand): llama.cpp's forward on ktq's unquantized GGUF
# against ktq's own forward on the checkpoint, scored on the same tokens,
# windows and positions (llama-perplexity's protocol: 256-token chunks, the
# second half scored; ktq eval-ppl --nll-out gives every position's loss).
# Agreement to ~5 digits shows the metadata, names, layouts and the
# architecture's arithmetic (routing, shared experts, biases, norms) are what
# llama.cpp runs. Covers the shared models and the derived tiny-qwen2-moe
# (tests/data/make_tiny_qwen2_moe.py). Build: see llama_cpp_ppl.sh.
# usage: LLAMA_BIN=/tmp/llama-build/bin KTQ_BIN=build/ktq tests/interop/llama_cpp_forward_agreement.sh [SHARED]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ktq=${KTQ_BIN:-ktq}
shared=${1:-$here/../../../shared}
chunks=${CHUNKS:-64}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/models"
for m in tiny-llama tiny-qwen3-moe tiny-mixtral tiny-deepseek-v3; do ln -s "$shared/models/$m" "$work/models/$m"; done
python3 "$here/../data/make_tiny_qwen2_moe.py" "$shared/models" "$work/models/tiny-qwen2-moe" > /dev/null
echo "| model | llama.cpp (F16 GGUF) | ktq forward (checkpoint) | relative difference |"
echo "|---|---|---|---|"
for m in ${MODELS:-tiny-qwen2-moe tiny-llama tiny-qwen3-moe tiny-mixtral tiny-deepseek-v3}; do
  "$ktq" convert "$work/models/$m" "$work/f16.gguf" --to gguf --type F16 --quiet --overwrite
  lp=$("$LLAMA_BIN/llama-perplexity" -m "$work/f16.gguf" -f "$shared/data/eval.txt" -c 256 -b 256 --chunks "$chunks" \
         -t "$(nproc)" 2>&1 | sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p')
  "$ktq" eval-ppl "$work/models/$m" --text "$shared/data/eval.txt" --max-tokens $((chunks * 256)) \
      --nll-out "$work/nll" -q > /dev/null
  python3 - "$m" "$lp" "$work/nll" "$chunks" <<'PY'
import sys
import numpy as np
m, lp, path, chunks = sys.argv[1], float(sys.argv[2]), sys.argv[3], int(sys.argv[4])
nll = np.fromfile(path, np.float64).reshape(chunks, 255)
ours = float(np.exp(nll[:, 128:255].mean()))  # positions 128..254 predict tokens 129..255
rel = abs(ours - lp) / lp
print(f"| {m} | {lp:.4f} | {ours:.4f} | {rel:.1e} |")
sys.exit(0 if rel < 2e-4 else 1)
PY
done
