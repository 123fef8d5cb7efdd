#!/usr/bin/env bash
# Regenerates tests/golden/kt_awq.json: SHA-256 of each safetensors shard
# kt-kernel's own convert_cpu_weights.py writes with --input-type awq
# --quant-method awq for the AutoAWQ fixture of tiny-qwen3-moe
# (tests/data/make_awq_fixture.py), run through
# tests/interop/kt_kernel_awq_reference.py (no GPU or kt_kernel extension
# needed). test_awq_input.py checks ktq's shards against these.
# usage: PYTHON=python-with-torch-and-triton make_kt_awq_golden.sh CONVERT_CPU_WEIGHTS_PY VERSION_LABEL [SHARED_DIR]
#   (the script from a ktransformers checkout: kt-kernel/scripts/convert_cpu_weights.py, e.g. of tag v0.7.0)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
script=$1
label=$2
shared=${3:-$here/../../../shared}
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 "$here/../data/make_awq_fixture.py" "$shared/models/tiny-qwen3-moe" "$work/awq"
"$python" "$here/../interop/kt_kernel_awq_reference.py" "$script" \
  -i "$work/awq" -o "$work/out" > "$work/log" 2>&1 || { tail -20 "$work/log"; exit 1; }
python3 - "$work/out" "$label" > "$here/kt_awq.json" <<'PY'
import hashlib, json, os, sys
out, commit = sys.argv[1], sys.argv[2]
files = sorted(f for f in os.listdir(out) if f.endswith(".safetensors"))
print(json.dumps({"source": f"kt-kernel convert_cpu_weights.py ({commit}), --input-type awq --quant-method awq, "
                            "on make_awq_fixture.py's tiny-qwen3-moe",
                  "files": {f: hashlib.sha256(open(os.path.join(out, f), "rb").read()).hexdigest() for f in files}},
                 indent=1))
PY
echo "wrote $here/kt_awq.json"
