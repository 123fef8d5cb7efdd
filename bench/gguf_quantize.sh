#!/usr/bin/env bash
# Benchmark: `ktq convert --to gguf` straight from the hub checkpoint against
# llama.cpp's llama-quantize (--pure) starting from the BF16 GGUF it needs
# (written by ktq), same machine, same thread count, types Q8_0, Q4_K, Q6_K,
# on the synthetic BF16 Qwen3-MoE checkpoint of ct_rtn.sh (~5 GB; the shared
# tiny-qwen3-moe tokenizer.json is copied in, a GGUF carries the tokenizer).
# Prints wall times, the speed-up, peak RSS, and whether every tensor is
# byte-identical (gguf-py).
# usage: LLAMA_QUANTIZE=/path/llama-quantize bench/gguf_quantize.sh WORK [THREADS] [SHARED]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$1 threads=${2:-$(nproc)} shared=${3:-$root/../shared}
ktq=${KTQ_BIN:-$root/build/ktq}
mkdir -p "$work"
model=$work/synthetic-qwen3
[ -f "$model/config.json" ] || python3 "$root/bench/make_synthetic_bf16_moe.py" "$model" --hidden 2048 \
  --moe-intermediate 768 --experts 128 --layers 4
cp "$shared/models/tiny-qwen3-moe/tokenizer.json" "$model/"
timed() { python3 -c 'import resource, subprocess, sys, time
t = time.monotonic(); subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(f"{time.monotonic() - t:.2f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f}")' "$@"; }
rm -f "$work"/*.gguf
"$ktq" convert "$model" "$work/bf16.gguf" --to gguf --type BF16 --threads "$threads" --quiet
printf '| type | ktq (hub -> GGUF) | llama-quantize (BF16 GGUF -> type) | speed-up | peak RSS ktq / llama-quantize | identical |\n|---|---|---|---|---|---|\n'
for t in Q8_0 Q4_K Q6_K; do
  cat "$model"/*.safetensors "$work/bf16.gguf" > /dev/null
  read -r ks krss < <(timed "$ktq" convert "$model" "$work/ktq.gguf" --to gguf --type "$t" --threads "$threads" --quiet --overwrite)
  cat "$work/bf16.gguf" > /dev/null
  read -r ls lrss < <(timed "$LLAMA_QUANTIZE" --pure "$work/bf16.gguf" "$work/ref.gguf" "$t" "$threads")
  same=$(python3 - "$work/ktq.gguf" "$work/ref.gguf" <<'PY'
import sys
import numpy as np
from gguf import GGUFReader
a = {x.name: np.asarray(x.data).tobytes() for x in GGUFReader(sys.argv[1]).tensors}
b = {x.name: np.asarray(x.data).tobytes() for x in GGUFReader(sys.argv[2]).tensors}
print(f"{sum(a.get(n) == v for n, v in b.items())}/{len(b)}")
PY
)
  echo "| $t | $ks s | $ls s | $(python3 -c "print(f'{$ls / $ks:.2f}x')") | $krss / $lrss MiB | $same |"
  rm -f "$work/ref.gguf"
done
