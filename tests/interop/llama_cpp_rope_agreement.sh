#!/usr/bin/env bash
# Interop check (run by hand): RoPE scaling through llama.cpp. For each scaled
# variant of tests/python/rope_variants.py (shared weights, config asking for
# linear / llama3 / yarn; DeepSeek's yarn with mscale), llama.cpp's
# llama-perplexity on ktq's F16 GGUF against ktq's forward on the checkpoint
# (which tests/python/test_rope_scaling.py checks against transformers), same
# protocol as llama_cpp_forward_agreement.sh. Agreement shows the rope keys and
# rope_freqs tensor ktq writes make llama.cpp compute the same positions.
# usage: LLAMA_BIN=/tmp/llama-build/bin KTQ_BIN=build/ktq tests/interop/llama_cpp_rope_agreement.sh [SHARED]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ktq=${KTQ_BIN:-ktq}
shared=${1:-$here/../../../shared}
chunks=${CHUNKS:-32}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "| variant | llama.cpp (F16 GGUF) | ktq forward (checkpoint) | relative difference |"
echo "|---|---|---|---|"
status=0
for v in ${VARIANTS:-llama-default llama-linear llama-llama3 llama-yarn deepseek-default deepseek-yarn}; do
  python3 -c "import sys; sys.path.insert(0, '$here/../python'); from rope_variants import make_variant; make_variant('$shared', '$v', '$work/$v')"
  "$ktq" convert "$work/$v" "$work/f16.gguf" --to gguf --type F16 --quiet --overwrite
  lp=$("$LLAMA_BIN/llama-perplexity" -m "$work/f16.gguf" -f "$shared/data/eval.txt" -c 256 -b 256 --chunks "$chunks" \
         -t "$(nproc)" 2>&1 | sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p')
  "$ktq" eval-ppl "$work/$v" --text "$shared/data/eval.txt" --max-tokens $((chunks * 256)) --nll-out "$work/nll" -q > /dev/null
  python3 - "$v" "$lp" "$work/nll" "$chunks" <<'PY' || status=1
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
exit $status
