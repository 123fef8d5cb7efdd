#!/usr/bin/env bash
# Makes tests/golden/imatrix/: importance matrices computed by llama.cpp's
# llama-imatrix on calib.txt over ktq's unquantized GGUF of tiny-llama and
# tiny-qwen3-moe (in both of its formats: GGUF and legacy .dat), and
# gguf_imatrix.json: the SHA-256 of every tensor llama-quantize --imatrix
# writes with them, for the types and mixtures listed below.
# tests/python/test_gguf_imatrix.py checks ktq's files against these in CI.
# Tools: llama-imatrix and llama-quantize of the llama-cpp-python 0.3.36 sdist
# (build as tests/interop/llama_cpp_ppl.sh describes). Needs gguf-py.
# usage: LLAMA_BIN=/tmp/llama-build/bin KTQ_BIN=build/ktq tests/golden/make_imatrix_golden.sh [SHARED]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ktq=${KTQ_BIN:-ktq}
shared=${1:-$here/../../../shared}
out=$here/imatrix
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cases=()
for m in tiny-llama tiny-qwen3-moe; do
  "$ktq" convert "$shared/models/$m" "$work/$m-BF16.gguf" --to gguf --type BF16 --quiet
  for fmt in gguf dat; do
    (cd "$work" && "$LLAMA_BIN/llama-imatrix" -m "$m-BF16.gguf" -f "$shared/data/calib.txt" -c 256 --chunks 16 \
       --no-ppl -o "$m.imatrix.$fmt" --output-format "$fmt" -t 2 > log 2>&1) || { tail -5 "$work/log"; exit 1; }
    cp "$work/$m.imatrix.$fmt" "$out/"
  done
  for t in pure:Q4_0 pure:Q5_1 pure:Q2_K pure:Q3_K pure:Q4_K pure:Q5_K pure:Q6_K Q4_K_M Q4_0; do
    fmt=gguf; [ "$t" = pure:Q5_1 ] || [ "$t" = pure:Q3_K ] && fmt=dat
    flags=(); name=${t#pure:}; [ "$name" != "$t" ] && flags=(--pure)
    (cd "$work" && "$LLAMA_BIN/llama-quantize" "${flags[@]}" --imatrix "$m.imatrix.$fmt" "$m-BF16.gguf" q.gguf "$name" 2 > log 2>&1) ||
      { tail -5 "$work/log"; exit 1; }
    python3 - "$work/q.gguf" "$m" "$name" "${flags[*]:-}" "$m.imatrix.$fmt" > "$work/case-${#cases[@]}.json" <<'PY'
import hashlib, json, sys
import numpy as np
from gguf import GGUFReader
path, model, name, flags, imatrix = sys.argv[1:]
r = GGUFReader(path)
tensors = {t.name: {"type": t.tensor_type.name, "sha256": hashlib.sha256(np.asarray(t.data).tobytes()).hexdigest()}
           for t in r.tensors}
print(json.dumps({"model": model, "imatrix": imatrix, "pure": flags == "--pure", "type": name, "tensors": tensors}))
PY
    cases+=("$work/case-${#cases[@]}.json")
  done
done
python3 - "$here/gguf_imatrix.json" "${cases[@]}" <<'PY'
import json, sys
cases = [json.load(open(p)) for p in sys.argv[2:]]
json.dump({"about": "llama-quantize --imatrix (llama-cpp-python 0.3.36 sdist) of ktq's BF16 GGUF, per-tensor SHA-256; "
                    "imatrix files in tests/golden/imatrix/ from llama-imatrix; made by make_imatrix_golden.sh",
           "cases": cases}, open(sys.argv[1], "w"), indent=1)
print(f"wrote {sys.argv[1]}: {len(cases)} cases")
PY
ls -la "$out"
